"""The fault plan: what goes wrong on purpose, and the seeded dice that decide when.

perpbot's safety features (retries, idempotent resubmits, shared rate budgets, stale-feed
detection) are only testable if the exchange misbehaves on demand and reproducibly, so
every probabilistic fault draws from one RNG seeded from the simulator seed, and a
``count`` caps how many times a fault fires (``rate=1, count=1`` = "exactly the next one").

A plan comes from ``[faults]`` in sim.toml or from ``POST /__sim/faults`` (which replaces
the whole plan). ``price_jump`` is one-shot: it is applied when the plan is installed.
"""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field

from perpbot.sim.strict import Strict
from perpbot.sim.ws_faults import StreamFaults


class _Targeted(Strict):
    """Shared selector: which requests a fault may hit (empty list = all)."""

    rate: float = Field(0.0, ge=0.0, le=1.0)
    paths: list[str] = Field(default_factory=list)
    methods: list[str] = Field(default_factory=list)
    count: int | None = Field(None, ge=0)

    def selects(self, method: str, path: str) -> bool:
        if self.methods and method.upper() not in {m.upper() for m in self.methods}:
            return False
        if not self.paths:
            return True
        for pattern in self.paths:
            if pattern.endswith("*"):
                if path.startswith(pattern[:-1]):
                    return True
            elif path == pattern:
                return True
        return False


class LatencyFault(Strict):
    fixed_ms: float = Field(0.0, ge=0.0)
    jitter_ms: float = Field(0.0, ge=0.0)
    paths: list[str] = Field(default_factory=list)


class ErrorFault(_Targeted):
    """Answer with an HTTP 5xx instead of processing the request (nothing is committed)."""

    statuses: list[Literal[500, 502, 503, 504]] = Field(default_factory=lambda: [503])
    body: Literal["html", "json"] = "html"


class OrderNotFoundFault(_Targeted):
    """Answer -2013 "Order does not exist." (HTTP 400) instead of processing the request, as
    Binance answers a lookup of an order it will not serve (another service's, a purged
    one). Defaults to the order lookup (GET /fapi/v1/order) only."""

    paths: list[str] = Field(default_factory=lambda: ["/fapi/v1/order"])
    methods: list[str] = Field(default_factory=lambda: ["GET"])


class DropFault(_Targeted):
    """Close the connection without a response, before processing (nothing is committed)."""


class LostResponseFault(_Targeted):
    """Process and commit the request, then lose the response.

    ``mode="close"`` closes the connection; ``mode="hold"`` keeps it open for ``hold_ms``
    (past the client's timeout) and then closes it. Defaults to order placement only.
    """

    paths: list[str] = Field(default_factory=lambda: ["/fapi/v1/order", "/fapi/v1/batchOrders"])
    methods: list[str] = Field(default_factory=lambda: ["POST"])
    mode: Literal["close", "hold"] = "close"
    hold_ms: int = Field(30_000, ge=0)


class DelayedResponseFault(_Targeted):
    """Process and commit the request, then hold its answer ``delay_ms`` before sending it.

    Unlike ``latency`` (which waits before processing), the order already exists (filled,
    resting or cancelled) and its user-stream events go out while the client still waits:
    the fill can reach the client before the answer that names the order. A ``delay_ms``
    past the client's timeout makes the answer's outcome unknown to it. Any answer of a
    selected request is held (an error too). Defaults to order placement only.
    """

    paths: list[str] = Field(default_factory=lambda: ["/fapi/v1/order", "/fapi/v1/batchOrders"])
    methods: list[str] = Field(default_factory=lambda: ["POST"])
    delay_ms: int = Field(1_000, ge=0)


class LimitsOverride(Strict):
    """Replace some rate limits at run time (e.g. a mid-run tightening); exchangeInfo follows."""

    weight_per_window: int | None = Field(None, gt=0)
    weight_window_s: int | None = Field(None, gt=0)
    orders_per_short_window: int | None = Field(None, gt=0)
    short_window_s: int | None = Field(None, gt=0)
    orders_per_long_window: int | None = Field(None, gt=0)
    long_window_s: int | None = Field(None, gt=0)


class FaultPlan(Strict):
    latency: LatencyFault = Field(default_factory=LatencyFault)
    errors: ErrorFault = Field(default_factory=ErrorFault)
    order_not_found: OrderNotFoundFault = Field(default_factory=OrderNotFoundFault)
    drop: DropFault = Field(default_factory=DropFault)
    lost_response: LostResponseFault = Field(default_factory=LostResponseFault)
    delayed_response: DelayedResponseFault = Field(default_factory=DelayedResponseFault)
    limits: LimitsOverride | None = None
    freeze_prices: bool = False
    freeze_symbols: list[str] = Field(default_factory=list)
    price_jump: dict[str, float] = Field(default_factory=dict)
    thin_book: float = Field(1.0, gt=0.0, le=1.0)
    clock_skew_ms: int = 0
    streams: StreamFaults = Field(default_factory=StreamFaults)


class FaultInjector:
    """Runtime decisions for the installed plan, drawn from a dedicated seeded RNG.

    A separate RNG keeps fault dice from perturbing the market's random walk, so adding a
    fault to a test does not change the prices it sees.
    """

    def __init__(self, seed: int, plan: FaultPlan | None = None) -> None:
        self.rng = random.Random(seed * 7919 + 17)
        self.plan = plan or FaultPlan()
        self._fired: dict[str, int] = {}

    def install(self, plan: FaultPlan) -> None:
        self.plan = plan
        self._fired = {}

    def _roll(self, name: str, fault: _Targeted, method: str, path: str) -> bool:
        if fault.rate <= 0.0 or not fault.selects(method, path):
            return False
        if fault.count is not None and self._fired.get(name, 0) >= fault.count:
            return False
        if fault.rate < 1.0 and self.rng.random() >= fault.rate:
            return False
        self._fired[name] = self._fired.get(name, 0) + 1
        return True

    def latency_s(self, path: str) -> float:
        lat = self.plan.latency
        if lat.fixed_ms <= 0 and lat.jitter_ms <= 0:
            return 0.0
        if lat.paths and path not in lat.paths:
            return 0.0
        jitter = self.rng.uniform(0.0, lat.jitter_ms) if lat.jitter_ms > 0 else 0.0
        return (lat.fixed_ms + jitter) / 1000.0

    def error_status(self, method: str, path: str) -> int | None:
        fault = self.plan.errors
        if not self._roll("errors", fault, method, path):
            return None
        return self.rng.choice(fault.statuses) if fault.statuses else 503

    def order_not_found(self, method: str, path: str) -> bool:
        return self._roll("order_not_found", self.plan.order_not_found, method, path)

    def drop(self, method: str, path: str) -> bool:
        return self._roll("drop", self.plan.drop, method, path)

    def lose_response(self, method: str, path: str) -> bool:
        return self._roll("lost_response", self.plan.lost_response, method, path)

    def answer_delay_s(self, method: str, path: str) -> float:
        """Seconds to hold a processed request's answer (0: send it at once)."""
        fault = self.plan.delayed_response
        if fault.delay_ms <= 0 or not self._roll("delayed_response", fault, method, path):
            return 0.0
        return fault.delay_ms / 1000.0

    def frozen(self, symbol: str) -> bool:
        if not self.plan.freeze_prices:
            return False
        return not self.plan.freeze_symbols or symbol in self.plan.freeze_symbols
