"""The simulator's clock: wall time, or a manual clock that tests step explicitly.

Everything in the engine (market ticks, funding, countdowns, rate-limit windows, payload
timestamps) reads ``now_ms()``. The manual mode exists so tests can step the market
deterministically without sleeping; the skew (a fault) shifts the server's notion of time
so that clients which never sync their clock see -1021 exactly as they would on Binance.

Signature timestamps are checked against ``auth_now_ms()``. In wall mode that is the same
clock. In manual mode it is the wall clock plus the skew, because clients sign with their
own wall clock and a manual clock that stands still (or jumps by hours) would otherwise
reject every request; the manual clock is a simulation device, not something to sync to.
A fast wall clock (``clock_speed`` > 1, e.g. 100 for paper runs at 100x) is judged the
same way: signatures against the wall clock, everything else on the fast one.
"""

from __future__ import annotations

import time
from typing import Literal

ClockMode = Literal["wall", "manual"]


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


class SimClock:
    """Engine time in epoch milliseconds, plus an adjustable skew."""

    def __init__(
        self,
        mode: ClockMode = "wall",
        start_ms: int | None = None,
        speed: float = 1.0,
        *,
        follow: bool = False,
    ) -> None:
        """``follow``: a wall clock that starts at ``start_ms`` (a replay's first event)
        instead of now, and runs ``speed`` times real time from there."""
        self.mode: ClockMode = mode
        self.skew_ms = 0
        self.speed = speed
        self._manual_ms = start_ms if start_ms is not None else wall_ms()
        self._wall0 = wall_ms()
        self._origin = start_ms if follow and start_ms is not None else self._wall0

    def now_ms(self) -> int:
        """Engine time; a wall clock with ``speed`` != 1 runs that many times faster."""
        if self.mode == "manual":
            return self._manual_ms + self.skew_ms
        if self.speed != 1.0 or self._origin != self._wall0:
            return self._origin + int((wall_ms() - self._wall0) * self.speed) + self.skew_ms
        return wall_ms() + self.skew_ms

    def auth_now_ms(self) -> int:
        """The time signed timestamps are judged against (see the module docstring)."""
        if self.mode == "manual" or self.speed != 1.0 or self._origin != self._wall0:
            return wall_ms() + self.skew_ms
        return self.now_ms()

    def advance(self, ms: int) -> int:
        """Step a manual clock forward by ``ms``; returns the new engine time."""
        if self.mode != "manual":
            raise ValueError("advance is only available with clock = 'manual'")
        if ms < 0:
            raise ValueError("cannot move the clock backwards")
        self._manual_ms += ms
        return self.now_ms()
