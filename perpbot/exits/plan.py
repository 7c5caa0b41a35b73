"""The arithmetic of an exit: what the visible book costs, and slicing vs one market order.

``choose`` weighs the two ways out with the mean / standard-deviation objective of Almgren
& Chriss, "Optimal execution of portfolio transactions", Journal of Risk 3(2), 2000 (their
"value at risk" form, E[cost] + lambda * sqrt(Var[cost])):

* one market order: no timing risk; its cost is the walk through the visible book now
  (this very book: the order trades against it);
* slices: children of ``participation`` x the depth within ``band_bps`` of the touch (at
  most ``touch_share`` of the size at the touch: ``slice_size``; of the band's average
  level in the estimate), one every ``pace_s``.
  Their books are still to come (the top level is re-quoted and refilled between
  children), so their cost comes from the band's average depth, not from this instant's
  top level: A&C's linear impact, the price moves gamma = band width / depth in the band
  per unit traded; each child of size c walks c gamma / 2 on average and moves the touch
  c gamma, of which ``permanent_share`` stays for the later children (A&C's permanent
  impact, sec. 2: the k-th child trades (k - 1) share x c gamma lower; conservative for
  children that stay within the touch's size and do not walk at all). While it trades,
  the rest is exposed to the price: for a linear schedule over T seconds the shortfall's
  variance is sigma^2 X^2 T / 3 (A&C sec. 2, trading trajectory x_k = X (1 - t_k / T)).

Both ways out start from the same touch, so both costs are counted from the touch: the
offset between the arrival mark and the touch is paid by either and left out of the choice.

Urgency overrides the trade-off: a liquidation closer than ``liq_urgent_pct``, or closer
than ``liq_sigmas`` standard deviations of the price move over the slicing time, means
market now (being liquidated costs the whole margin, a term no impact saving repays).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

Levels = list[list[float]]  # [[price, qty], ...], best first


@dataclass(frozen=True)
class Sweep:
    filled: float
    average: float  # 0.0 when nothing filled
    worst: float


def sweep(levels: Levels, qty: float) -> Sweep:
    """Walk ``levels`` (best first) for ``qty``: what a taker of that size would get."""
    left, cost, worst = qty, 0.0, 0.0
    for price, size in levels:
        if left <= 0:
            break
        take = min(left, size)
        cost += take * price
        left -= take
        worst = price
    filled = qty - max(left, 0.0)
    return Sweep(filled, cost / filled if filled else 0.0, worst)


def depth_within(levels: Levels, band_bps: float) -> float:
    """Quantity resting within ``band_bps`` of the best level."""
    if not levels:
        return 0.0
    touch = levels[0][0]
    edge = touch * band_bps / 10_000
    return sum(size for price, size in levels if abs(price - touch) <= edge + 1e-12)


def slice_size(levels: Levels, participation: float, band_bps: float, touch_share: float) -> float:
    """One slice child: ``participation`` x the depth within ``band_bps`` of the touch, at
    most ``touch_share`` of the size shown at the touch. A child that takes only part of the
    best level fills at the touch and leaves the level standing; one that clears it moves
    the touch (the price moves when the best queue is depleted: Huang, Lehalle & Rosenbaum,
    "Simulating and analyzing order book data: the queue-reactive model", JASA 110(509),
    2015; the simulator's lasting impact is a share of such moves) and walks to the next."""
    if not levels:
        return 0.0
    return min(participation * depth_within(levels, band_bps), touch_share * levels[0][1])


@dataclass(frozen=True)
class Urgency:
    """Why the exit is urgent: how far liquidation is, how much the price moves, who asked."""

    liq_distance_pct: float | None  # None: no liquidation price (fully collateralised)
    sigma_per_sqrt_s: float  # stdev of the log price per sqrt(second)
    asked_by: str = "strategy"  # "strategy", "command", "kill:flatten", "protect"


@dataclass(frozen=True)
class Choice:
    policy: Literal["slices", "market"]
    code: str
    sentence: str
    market_cost: float  # quote currency, expected
    slices_cost: float
    slices_risk: float  # one standard deviation of the slices' timing cost (quote)
    slices_time_s: float


# risk aversion (A&C's lambda, in standard deviations) per requester: a kill switch that
# asked for flatten wants out sooner than a strategy taking profit
RISK_AVERSION = {"strategy": 1.0, "command": 1.0, "kill:flatten": 2.0, "protect": 3.0}


def choose(
    qty: float,
    levels: Levels,
    arrival: float,
    urgency: Urgency,
    *,
    participation: float,
    band_bps: float,
    pace_s: float,
    permanent_share: float,
    touch_share: float = 0.5,
    liq_urgent_pct: float = 1.0,
    liq_sigmas: float = 3.0,
) -> Choice:
    """Slices or market for ``qty`` against ``levels`` (the side the exit trades into)."""
    qty = abs(qty)
    walk = sweep(levels, qty)
    unfilled = qty - walk.filled
    touch = levels[0][0] if levels else arrival
    last = levels[-1][0] if levels else arrival
    # what the visible book cannot take fills beyond it: at least as far as its last level
    market_cost = walk.filled * abs(walk.average - touch) + unfilled * 2 * abs(last - touch)
    visible = depth_within(levels, band_bps)
    # the children meet the band's levels as they come, not this instant's top level: the
    # cap is touch_share of the band's average level
    shown = sum(1 for price, _ in levels if abs(price - touch) <= touch * band_bps / 10_000)
    top = visible / shown if shown else 0.0
    child = max(min(participation * visible, touch_share * top), qty / 1000) if visible else qty
    n = max(1, math.ceil(qty / child))
    # gamma: how far the price moves per unit traded, the band's width over its depth
    gamma = touch * band_bps / 10_000 / visible if visible else 0.0
    move = min(child, qty) * gamma  # one child's move of the touch, on an average book
    per_unit = move / 2 + permanent_share * move * (n - 1) / 2
    slices_cost = qty * per_unit
    t = (n - 1) * pace_s
    risk = urgency.sigma_per_sqrt_s * arrival * qty * math.sqrt(t / 3)
    lam = RISK_AVERSION.get(urgency.asked_by, 1.0)
    numbers = dict(market_cost=market_cost, slices_cost=slices_cost, slices_risk=risk)
    book_takes = f"the book would take {t:.0f} s at {participation:.0%} participation"
    liq = urgency.liq_distance_pct
    if liq is not None and liq < liq_urgent_pct:
        return Choice(
            "market", "EXIT_LIQ_NEAR",
            f"market: liquidation {liq:.2f}% away, {book_takes}",
            slices_time_s=t, **numbers,
        )  # fmt: skip
    move_pct = 100 * urgency.sigma_per_sqrt_s * math.sqrt(max(t, pace_s))
    if liq is not None and liq < liq_sigmas * move_pct:
        return Choice(
            "market", "EXIT_LIQ_IN_REACH",
            f"market: liquidation {liq:.2f}% away is within {liq_sigmas:g} sigma "
            f"({move_pct:.2f}% each) of the move while {book_takes}",
            slices_time_s=t, **numbers,
        )  # fmt: skip
    slices_score = slices_cost + lam * risk
    if slices_score < market_cost:
        return Choice(
            "slices", "EXIT_SLICES_CHEAPER",
            f"slices: expected {slices_cost:.2f} + {lam:g} x {risk:.2f} timing risk over "
            f"{t:.0f} s beats {market_cost:.2f} for one market order",
            slices_time_s=t, **numbers,
        )  # fmt: skip
    return Choice(
        "market", "EXIT_MARKET_CHEAPER",
        f"market: {market_cost:.2f} now beats slices' {slices_cost:.2f} + {lam:g} x "
        f"{risk:.2f} timing risk ({book_takes})",
        slices_time_s=t, **numbers,
    )  # fmt: skip
