"""Stream health: when each stream last spoke, whether it is stale, how it reconnects.

A stream with a cadence (the mark price, every second) is *stale* when it has been silent
longer than ``[exchange] stream_stale_s``; the feed then closes its connection and
reconnects. Event-driven streams (the user data stream speaks only when something
happens) have no cadence: a silent stall of the user stream is found from the order
book's evidence (perpbot.streams.evidence), and anything else by the slow REST reconcile.
Reconnects wait with exponential backoff and jitter (seeded), so that many bots losing
their connections at once do not come back at once (no reconnect storm).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True, kw_only=True)
class StreamHealth:
    name: str  # "mark BTC/USDT:USDT", "book BTC/USDT:USDT", "user orders", ...
    private: bool
    cadence_s: float | None  # the expected longest silence; None: event-driven
    last_msg: float | None = None  # monotonic
    messages: int = 0
    down_since: float | None = None  # monotonic; None while up
    stale: bool = False
    reconnects: int = 0
    last_error: str | None = None

    def seen(self, now: float | None = None) -> None:
        self.last_msg = time.monotonic() if now is None else now
        self.messages += 1
        self.stale = False

    def age(self, now: float | None = None) -> float | None:
        if self.last_msg is None:
            return None
        return (time.monotonic() if now is None else now) - self.last_msg

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        age = self.age(now)
        return {
            "name": self.name,
            "state": "down" if self.down_since is not None else "stale" if self.stale else "up",
            "age_s": round(age, 3) if age is not None else None,
            "messages": self.messages,
            "reconnects": self.reconnects,
            "last_error": self.last_error,
        }


class Backoff:
    """Exponential backoff with "equal jitter": half the step fixed, half random."""

    def __init__(self, rng: random.Random, *, base_s: float = 0.2, cap_s: float = 10.0) -> None:
        self.rng = rng
        self.base_s, self.cap_s = base_s, cap_s
        self.attempts = 0

    def next(self) -> float:
        step = min(self.cap_s, self.base_s * 2.0**self.attempts)
        self.attempts += 1
        return step / 2.0 + self.rng.uniform(0.0, step / 2.0)

    def reset(self) -> None:
        self.attempts = 0
