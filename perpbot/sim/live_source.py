"""The live source: another exchange's public trades, through ccxt.pro, drive the market.

A dry run on live prices with simulated fills (as freqtrade's dry-run does): for each
configured symbol a task watches the upstream's public trades (``watch_trades``) and
pushes them into the engine's QueueFeed; the engine applies them as the taker flow, at
the simulator's own clock (feed.py, trading.follow_tick). Nothing private is used: no
keys, no orders upstream. A failed watch is retried with a capped backoff and counted,
so an upstream outage shows as a market that stands still, as a frozen feed would.

``url`` points the upstream at a Binance USD-M simulator (tests; a private mirror).
This module is imported only when a live source is configured (server.py): ccxt.pro is
a heavy import that `perpbot sim serve` without --live should not pay for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from typing import Any

import ccxt.pro as ccxtpro

from perpbot.client.loopback import configure_loopback_pro
from perpbot.sim.config import SourceConfig
from perpbot.sim.feed import QueueFeed

log = logging.getLogger("perpbot.sim.live")
BACKOFF_S = (0.5, 1.0, 2.0, 5.0, 10.0)


class LiveSource:
    def __init__(self, cfg: SourceConfig, feed: QueueFeed) -> None:
        self.cfg = cfg
        self.feed = feed
        self.errors = 0
        self.last_error = ""
        self._ex: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    def _exchange(self) -> Any:
        cls = getattr(ccxtpro, self.cfg.exchange, None)
        if cls is None:
            raise ValueError(f"ccxt.pro has no exchange {self.cfg.exchange!r}")
        ex = cls({"enableRateLimit": True, "timeout": 10_000})
        if self.cfg.url:
            configure_loopback_pro(ex, self.cfg.url)
        return ex

    async def start(self) -> None:
        self._ex = self._exchange()
        for sim_symbol, upstream in self.cfg.symbols.items():
            self._tasks.append(asyncio.create_task(self._watch(sim_symbol, upstream)))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._ex is not None:
            ex, self._ex = self._ex, None
            with contextlib.suppress(Exception):
                await ex.close()

    async def _watch(self, sim_symbol: str, upstream: str) -> None:
        seen: deque[str] = deque(maxlen=2000)  # ids already pushed (a cache may repeat)
        failures = 0
        while True:
            try:
                trades = await self._ex.watch_trades(upstream)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # network, exchange or parse trouble: retry
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}"[:200]
                log.warning("live source %s %s: %s", self.cfg.exchange, upstream, self.last_error)
                await asyncio.sleep(BACKOFF_S[min(failures, len(BACKOFF_S) - 1)])
                failures += 1
                continue
            failures = 0
            for trade in trades:
                trade_id = str(trade.get("id") or (trade.get("timestamp"), trade.get("price")))
                if trade_id in seen:
                    continue
                seen.append(trade_id)
                price, amount = trade.get("price"), trade.get("amount")
                if not price or not amount:
                    continue
                self.feed.push(sim_symbol, float(price), float(amount), trade["side"] == "buy")
