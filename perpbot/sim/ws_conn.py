"""One WebSocket connection: its subscriptions, its send queue and the stream faults.

Events are queued (never awaited by the engine) and a per-connection sender task writes
them, so a slow client cannot stall the matching engine; stream faults (drop, duplicate,
reorder, delay, bursts, stall) are decided here, per event, from the hub's seeded dice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from perpbot.sim.ws_faults import StreamDice, StreamFaults
from perpbot.sim.ws_market import Stream

MAX_QUEUED = 50_000  # undelivered events before a non-reading client is disconnected
RELEASES_KEPT = 100  # the last times held events were released at, per connection


def wall_ms() -> float:
    return time.monotonic() * 1000.0


@dataclass(slots=True)
class WsCounters:
    opened: int = 0
    refused: int = 0
    closed_by_server: int = 0
    rate_limited: int = 0
    events_sent: int = 0
    events_dropped: int = 0
    events_duplicated: int = 0
    events_reordered: int = 0
    events_stalled: int = 0


@dataclass(eq=False)
class WsConn:
    conn_id: int
    ws: web.WebSocketResponse
    request: web.Request
    path: str
    route: str  # public | market | private | any (legacy /ws and /stream)
    combined: bool
    opened_ms: int  # simulator clock
    listen_key: str | None = None
    account: str | None = None
    events: frozenset[str] | None = None  # /private ?events= filter
    streams: dict[str, Stream] = field(default_factory=dict)
    incoming: deque[float] = field(default_factory=deque)
    last_ping_ms: float = field(default_factory=wall_ms)
    last_pong_ms: float = field(default_factory=wall_ms)
    queue: asyncio.Queue[tuple[float, str]] = field(default_factory=asyncio.Queue)
    held: str | None = None
    # when events held back by delay_ms / burst_ms were due, each recorded once it went out
    # (ms on wall_ms() above: this process's monotonic clock)
    released: deque[float] = field(default_factory=lambda: deque(maxlen=RELEASES_KEPT))
    closing: bool = False
    sender: asyncio.Task[None] | None = None

    @property
    def private(self) -> bool:
        return self.listen_key is not None

    def delivers(self, stream: Stream) -> bool:
        """Routed paths carry only their category; Binance drops the rest silently."""
        return self.route in ("any", stream.category)

    def offer(
        self, text: str, faults: StreamFaults, dice: StreamDice, counters: WsCounters
    ) -> None:
        if self.closing:
            return
        if not faults.applies(self.private):
            self._put(text, 0.0)
            return
        if faults.stall:
            counters.events_stalled += 1
            return
        if dice.roll(faults, faults.drop_rate):
            counters.events_dropped += 1
            return
        texts = [text]
        if dice.roll(faults, faults.duplicate_rate):
            counters.events_duplicated += 1
            texts.append(text)
        if self.held is None and dice.roll(faults, faults.reorder_rate):
            counters.events_reordered += 1
            self.held = text  # goes out after the next event
            return
        if self.held is not None:
            texts.append(self.held)
            self.held = None
        due = 0.0
        if faults.delay_ms or faults.jitter_ms:
            due = wall_ms() + dice.delay_s(faults) * 1000.0
        if faults.burst_ms:
            due = max(due, math.ceil(wall_ms() / faults.burst_ms) * faults.burst_ms)
        for item in texts:
            self._put(item, due)

    def _put(self, text: str, due: float) -> None:
        if self.queue.qsize() >= MAX_QUEUED:  # a client that stopped reading
            self.abort()
            return
        self.queue.put_nowait((due, text))

    async def send_loop(self, counters: WsCounters) -> None:
        while True:
            due, text = await self.queue.get()
            wait = (due - wall_ms()) / 1000.0
            if wait > 0:
                await asyncio.sleep(wait)
            if self.ws.closed:
                return
            try:
                await self.ws.send_str(text)
            except (ConnectionError, RuntimeError):
                return
            counters.events_sent += 1
            if due:
                self.released.append(due)

    def abort(self) -> None:
        """Drop the TCP connection without a close frame (the client sees 1006)."""
        self.closing = True
        transport = self.request.transport
        if transport is not None:
            transport.abort()

    async def close(self, code: int, message: str) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            await self.ws.close(code=code, message=message.encode())
