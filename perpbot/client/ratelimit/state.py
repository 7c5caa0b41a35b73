"""The shared state of one exchange host: buckets, blocks, rules, the last change.

Plain dataclasses serialised as one small JSON document (by hand: ``dataclasses.asdict``
deep-copies recursively and would cost more than the rest of a request's bookkeeping).
The maths over it is in ``budget`` (spending) and ``adapt`` (pushback, recovery, rules).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from perpbot.client.ratelimit.rules import Kind
from perpbot.config import LimitsSection

MIN_FACTOR = 0.05  # never cut a budget below 5 % of the published limit
WINDOW_EPSILON_S = 0.01  # wake just after a window turns, never just before
PROBE_POLL_S = 0.002  # how often a request waiting for the probe slot looks again
LEASE_DIVISOR = 8  # a process leases at most 1/8 of the room left in a window...
LEASE_MAX_SHARE = 40  # ...and at most 1/40 of the cap
VERSION = 1


@dataclass(frozen=True)
class Policy:
    """The ``[limits]`` knobs the maths needs."""

    safety_margin: float = 0.05
    tighten_factor: float = 0.5
    recover_after_s: float = 60.0
    recover_step: float = 0.1
    probe_lease_s: float = 10.0

    @classmethod
    def from_config(cls, limits: LimitsSection, probe_lease_s: float = 10.0) -> Policy:
        return cls(
            safety_margin=limits.safety_margin,
            tighten_factor=limits.tighten_factor,
            recover_after_s=limits.recover_after_s,
            recover_step=limits.recover_step,
            probe_lease_s=probe_lease_s,
        )


@dataclass
class Bucket:
    kind: Kind
    window_s: int
    nominal: int | None = None
    source: str = "none"  # "exchange" | "config" | "none"
    factor: float = 1.0
    start: float = 0.0  # current window start, server clock (s)
    used: int = 0
    safe: int | None = None  # probing: highest usage accepted; None = trusted, no probing
    probe_until: float = 0.0
    calm_since: float = 0.0
    tighten_until: float = 0.0

    def cap(self, margin: float) -> int | None:
        if self.nominal is None:
            return None
        return max(1, math.floor(self.nominal * (1.0 - margin) * self.factor))

    def roll(self, now: float) -> None:
        start = math.floor(now / self.window_s) * self.window_s
        if start != self.start:
            self.start, self.used, self.probe_until = float(start), 0, 0.0

    def ends_at(self) -> float:
        return self.start + self.window_s


@dataclass
class HostState:
    """Everything shared about one exchange host (serialised as one JSON document)."""

    buckets: dict[str, Bucket] = field(default_factory=dict)
    order_rules: list[tuple[int, int, str]] = field(default_factory=list)  # window, limit, src
    blocked_until: float = 0.0
    block_path: str = ""
    banned_until: float = 0.0
    rules_checked_at: float = 0.0
    rules_source: str = "none"
    refresh_until: float = 0.0
    last_change: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        # by hand: dataclasses.asdict deep-copies recursively and costs ~0.2 ms per request
        d = dict(self.__dict__)
        d["buckets"] = {name: dict(b.__dict__) for name, b in self.buckets.items()}
        d["order_rules"] = [list(r) for r in self.order_rules]
        d["last_change"] = dict(self.last_change) if self.last_change else None
        d["v"] = VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> HostState:
        if not d or d.get("v") != VERSION:
            return cls()
        buckets = {k: Bucket(**v) for k, v in d.get("buckets", {}).items()}
        rules = [tuple(r) for r in d.get("order_rules", [])]
        fields = {k: v for k, v in d.items() if k not in ("buckets", "order_rules", "v")}
        return cls(buckets=buckets, order_rules=rules, **fields)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Change:
    """A budget change or a wait, explained (the layer turns it into a Decision)."""

    action: Literal["tighten", "recover", "ban", "info"]
    code: str
    sentence: str
    data: dict[str, Any]


@dataclass
class Grant:
    """The answer to "may this request leave now?"."""

    wait_s: float = 0.0
    reason: str = ""  # "" (granted), ban, retry_after, budget, probe, refresh, too_heavy
    bucket: str | None = None
    used: int = 0
    cap: int | None = None
    starts: dict[str, float] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    probes: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    leased: dict[str, int] = field(default_factory=dict)

    @property
    def granted(self) -> bool:
        return not self.reason


def weight_name(window_s: int) -> str:
    return f"weight/{window_s}s"


def orders_name(key_id: str, window_s: int) -> str:
    return f"orders/{window_s}s/{key_id}"


def bucket_name(kind: Kind, window_s: int, key_id: str) -> str:
    return weight_name(window_s) if kind == "weight" else orders_name(key_id, window_s)


def ensure_key(st: HostState, key_id: str) -> None:
    """Give ``key_id`` its order-count buckets (from the known order rules)."""
    for window_s, limit, source in st.order_rules:
        name = orders_name(key_id, window_s)
        if name not in st.buckets:
            st.buckets[name] = new_bucket("orders", window_s, limit, source)


def new_bucket(kind: Kind, window_s: int, limit: int, source: str) -> Bucket:
    # published budgets are trusted; configured ones are probed until the exchange accepts
    return Bucket(kind, window_s, limit, source, safe=None if source == "exchange" else 0)


def remember(st: HostState, change: Change, now: float) -> None:
    st.last_change = {"code": change.code, "sentence": change.sentence, "at": now}
