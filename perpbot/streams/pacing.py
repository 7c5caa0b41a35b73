"""Each stream connection budgeted like requests: its dial and its subscribe messages.

``guard_client`` wraps one ccxt.pro WebSocket client (``Piped.client``):

- before each dial, one new connection is taken from the shared budget (per IP, every
  process: perpbot.ratelimit.connections), so bots reconnecting at once wait for room
  rather than being refused by the exchange (HTTP 429 on the handshake); a refusal that
  comes anyway (429, 418, 503) is fed back (``ConnectionBudget.refused``): every dial on
  the IP then waits for its Retry-After, and a 429 or 418 cuts the budget;
- each client message (subscribe, unsubscribe) waits for room under the exchange's limit
  of ``[limits] ws_messages_per_s`` per connection per second (Binance USD-M: 10; more
  closes the connection). A connection belongs to one process, so this count is local:
  at most one less than the limit in any 1.1 s (a margin for the time on the wire).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any

import aiohttp
import ccxt

from perpbot.ratelimit.connections import REFUSED_STATUSES, ConnectionBudget

PACE_WINDOW_S = 1.1


class SendPacer:
    """At most ``per_window`` messages in any ``PACE_WINDOW_S``."""

    def __init__(self, per_s: int) -> None:
        self.per_window = max(1, per_s - 1)
        self.sent: deque[float] = deque()

    async def wait(self) -> None:
        while True:
            now = time.monotonic()
            while self.sent and now - self.sent[0] >= PACE_WINDOW_S:
                self.sent.popleft()
            if len(self.sent) < self.per_window:
                self.sent.append(now)
                return
            await asyncio.sleep(PACE_WINDOW_S - (now - self.sent[0]))


def retry_after_s(headers: Any) -> float | None:
    """A handshake answer's Retry-After in seconds (None when absent or not a number)."""
    raw = headers.get("Retry-After") if headers is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def guard_client(
    client: Any, connections: ConnectionBudget | None, per_s: int, *, private: bool
) -> None:
    """Budget ``client``'s dials and pace its messages (its ``open`` and ``send``)."""
    dial, send, handshake = client.open, client.send, client.create_connection
    pacer = SendPacer(per_s)

    async def handshake_observed(session: Any) -> Any:
        try:
            return await handshake(session)
        except aiohttp.WSServerHandshakeError as exc:
            if connections is not None and exc.status in REFUSED_STATUSES:
                await connections.refused(client.url, exc.status, retry_after_s(exc.headers))
            raise

    async def open_budgeted(session: Any, backoff_delay: float = 0) -> None:
        if connections is not None:
            try:
                await connections.admit(client.url, reducing=private)
            except Exception as exc:  # the shared store failed: this dial fails, retried
                client.on_error(ccxt.NetworkError(f"no connection budget: {exc}"))
                return
        await dial(session, backoff_delay)

    async def send_paced(message: Any) -> Any:
        await pacer.wait()
        return await send(message)

    client.open, client.send = open_budgeted, send_paced
    client.create_connection = handshake_observed
