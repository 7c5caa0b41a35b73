"""Each stream connection budgeted like requests: its dial and its subscribe messages.

``guard_client`` wraps one ccxt.pro WebSocket client (``Piped.client``):

- before each dial, one new connection is taken from the shared budget (per IP, every
  process: perpbot.ratelimit.connections), so bots reconnecting at once wait for room
  rather than being refused by the exchange (HTTP 429 on the handshake);
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

import ccxt

from perpbot.ratelimit.connections import ConnectionBudget

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


def guard_client(
    client: Any, connections: ConnectionBudget | None, per_s: int, *, private: bool
) -> None:
    """Budget ``client``'s dials and pace its messages (its ``open`` and ``send``)."""
    dial, send = client.open, client.send
    pacer = SendPacer(per_s)

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
