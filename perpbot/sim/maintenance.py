"""The exchange's maintenance window: every REST request refused, streams closed.

Binance USD-M documents no maintenance answer of its own; ccxt's Binance error table maps
the message ``System is under maintenance.`` (recorded there as
``{"code":1,"msg":"System is under maintenance."}``) to ``OnMaintenance`` (an
``ExchangeNotAvailable``), and Binance's general API information says 5XX answers are the
exchange's side. So in a window every REST request (public, signed, listenKey) gets HTTP
503 with that body, before faults, rate limits and authentication (nothing is processed,
nothing is charged), and WebSocket connections are closed when the window starts and
refused while it lasts.

What the window does to the account, where Binance says nothing, is the conservative
choice: resting orders stay (no fill: matching is halted, prices stand still), and time
keeps running for the timers: a ``countdownCancelAll`` that lapses inside the window fires
then and cancels the symbol's orders, so a bot comes back to an empty book.

A window is opened by ``POST /__sim/maintenance`` with a duration (``ms``, on the
simulator's clock) or until ``{"active": false}`` ends it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

STATUS = 503
CODE = 1
MESSAGE = "System is under maintenance."
BODY: dict[str, Any] = {"code": CODE, "msg": MESSAGE}


@dataclass(slots=True)
class Maintenance:
    """The window on the simulator's clock: [started_ms, until_ms) (until None: open-ended)."""

    started_ms: int | None = None
    until_ms: int | None = None
    windows: int = 0  # windows opened since start
    answers: int = 0  # REST requests answered "under maintenance"
    refused_streams: int = 0  # WebSocket handshakes refused in a window

    def start(self, now_ms: int, duration_ms: int | None) -> None:
        self.started_ms = now_ms
        self.until_ms = None if duration_ms is None else now_ms + duration_ms
        self.windows += 1

    def end(self) -> None:
        self.started_ms = self.until_ms = None

    def active(self, t_ms: int) -> bool:
        if self.started_ms is None or t_ms < self.started_ms:
            return False
        return self.until_ms is None or t_ms < self.until_ms

    def snapshot(self, now_ms: int) -> dict[str, Any]:
        return {
            "active": self.active(now_ms),
            "started_ms": self.started_ms,
            "until_ms": self.until_ms,
            "windows": self.windows,
            "answers": self.answers,
            "refused_streams": self.refused_streams,
        }
