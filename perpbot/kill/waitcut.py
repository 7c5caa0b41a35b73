"""While the kill switch acts, no request waits out a long rate-limit hold in silence.

A 429's Retry-After or a 418 ban makes the rate limiter hold every request of the host (28 s
seen; up to ``[limits] max_wait_s``). A kill's cancels would sit behind it, and `perpbot
kill` would wait with them, saying nothing. So while a kill acts, ``LongWaitCutter`` watches
the limiter's announced waits (``Decision(action="wait")``, published just before the
wait starts, for any wait over a second) and cuts short at once every one that would end
after the kill's deadline. The request is then not sent (sending into a Retry-After earns an
IP ban); the kill's cancel loop tries again until its deadline, and what could not be
cancelled is reported with the wait that was cut ("the exchange's Retry-After holds
requests until 12:03:34 UTC") and the dead-man countdown that covers it. A wait that ends
within the deadline is waited, and also reported.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from perpbot.client.waits import Interrupter
from perpbot.events import Decision, EventBus

MAX_RECORDS = 5


class LongWaitCutter:
    def __init__(self, bus: EventBus, interrupter: Interrupter, *, deadline_s: float) -> None:
        self.bus = bus
        self.interrupter = interrupter
        self.deadline = time.monotonic() + deadline_s
        self.cut: list[dict[str, Any]] = []
        self.waited: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> LongWaitCutter:
        self._loop = asyncio.get_running_loop()
        self.bus.subscribe(self.on_event)
        return self

    def __exit__(self, *exc: object) -> None:
        self.bus.unsubscribe(self.on_event)

    def on_event(self, event: Any) -> None:
        if not isinstance(event, Decision) or event.action != "wait":
            return
        data = event.data or {}
        try:
            wait_s = float(data.get("wait_s") or 0.0)
        except (TypeError, ValueError):
            return
        record = {
            "reason": str(data.get("reason") or "wait"),
            "wait_s": round(wait_s, 1),
            "until": time.time() + wait_s,
            "request": data.get("request"),
        }
        if time.monotonic() + wait_s <= self.deadline:
            _remember(self.waited, record)
            return
        _remember(self.cut, record)
        why = f"kill switch: not waiting {wait_s:.0f} s ({record['reason']}) past its deadline"
        if self._loop is not None:  # the wait registers right after this announcement
            self._loop.call_soon_threadsafe(self.interrupter.interrupt_current, why)

    def report(self) -> dict[str, Any]:
        return {"waits_cut": list(self.cut), "waits_waited": list(self.waited)}


def _remember(records: list[dict[str, Any]], record: dict[str, Any]) -> None:
    """Keep the latest record per (reason, request), at most MAX_RECORDS."""
    key = (record["reason"], record["request"])
    records[:] = [r for r in records if (r["reason"], r["request"]) != key][-MAX_RECORDS + 1 :]
    records.append(record)
