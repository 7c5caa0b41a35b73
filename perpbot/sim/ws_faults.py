"""Stream faults: the ``streams`` part of the fault plan, and its seeded delivery dice.

Applied per outgoing event on each connection (control replies are never faulted):
``drop_rate`` loses it, ``duplicate_rate`` sends it twice, ``reorder_rate`` holds it back
behind the next event, ``delay_ms``/``jitter_ms`` delay delivery, ``burst_ms`` holds events
and releases them together every ``burst_ms``, ``stall`` keeps connections open but silent
(events are lost, as on a stalled feed), ``refuse_connections`` answers new handshakes
with 503. ``scope`` picks market streams, user data streams, or both; ``count`` caps how
many drop/duplicate/reorder faults fire in total. One-shot actions (close with 1006,
expire listenKeys, announced or silently, forced rotation, a timed refusal window) are
control endpoints.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field

from perpbot.sim.strict import Strict


class StreamFaults(Strict):
    scope: Literal["all", "market", "user"] = "all"
    drop_rate: float = Field(0.0, ge=0.0, le=1.0)
    duplicate_rate: float = Field(0.0, ge=0.0, le=1.0)
    reorder_rate: float = Field(0.0, ge=0.0, le=1.0)
    count: int | None = Field(None, ge=0)
    delay_ms: float = Field(0.0, ge=0.0)
    jitter_ms: float = Field(0.0, ge=0.0)
    burst_ms: float = Field(0.0, ge=0.0)
    stall: bool = False
    refuse_connections: bool = False

    def applies(self, private: bool) -> bool:
        return self.scope == "all" or (self.scope == "user") == private


class StreamDice:
    """Seeded decisions for one plan; a separate RNG from the market's and the REST faults'."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed * 104_729 + 3)
        self.fired = 0

    def roll(self, faults: StreamFaults, rate: float) -> bool:
        if rate <= 0.0:
            return False
        if faults.count is not None and self.fired >= faults.count:
            return False
        if rate < 1.0 and self.rng.random() >= rate:
            return False
        self.fired += 1
        return True

    def delay_s(self, faults: StreamFaults) -> float:
        jitter = self.rng.uniform(0.0, faults.jitter_ms) if faults.jitter_ms > 0 else 0.0
        return (faults.delay_ms + jitter) / 1000.0
