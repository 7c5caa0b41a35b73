"""Borderline cascades: where the model's answer is a range, not a point.

A cascade can sit at a tipping point: one more liquidation order's move reaches the next
cluster, and the cascade runs on; one less, and it stops. The book the model walks is one
snapshot, and a book's depth changes from one moment to the next: over 80 of the
simulator's books the move of the same stream of liquidations has a standard deviation of
10-35 % of its mean (``tests/unit/stress``, docs/stress.md). So each shock is propagated
again on the snapshot made ``DEPTH_NOISE`` thinner and thicker. When they disagree
materially (one of this account's positions is liquidated on one and not on the other, or
the cascade's reach more than doubles or halves with a quarter of the depth: a jump, where
a move in proportion to the depth changes by about a third), the shock is *borderline*:
the output gives the range and the shock from which the cascade runs on at the snapshot's
depth, in words, instead of a point that may fall on the wrong side of the tipping point.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from perpbot.stress.cascade import Node, Outcome, propagate
from perpbot.stress.inputs import Book, Scenario

DEPTH_NOISE = 0.25  # the book's depth, this much thinner and thicker than the snapshot
REACH_RATIO = 2.0  # the reach more than doubles with a quarter less depth: a tipping point
REACH_MIN_PCT = 0.25  # ... and at least this much further (percent of the price)
SEARCH_UP_TO = 2.0  # the shock from which it runs on is looked for up to 2x the shock
BISECTIONS = 8


@dataclass(frozen=True, slots=True)
class Reach:
    """One propagation, in the terms the range is read in."""

    beyond_pct: float  # how far the mark goes beyond the shock, percent of the price
    liquidated_s: dict[int, float | None]  # this account's nodes: seconds after the shock


def scaled(scenario: Scenario, factor: float) -> Scenario:
    """``scenario`` with every book level's quantity times ``factor`` (prices unchanged)."""
    books = {
        s: Book(b.symbol, _times(b.bids, factor), _times(b.asks, factor))
        for s, b in scenario.books.items()
    }
    return dataclasses.replace(scenario, books=books)


def _times(levels: list[tuple[float, float]], factor: float) -> list[tuple[float, float]]:
    return [(p, q * factor) for p, q in levels]


def reach(nodes: list[Node], out: Outcome) -> Reach:
    sym = out.shock_symbol
    start = out.start[sym]
    shocked = out.path[sym][1][1]
    marks = [m for _, m in out.path[sym]]
    extreme = min(marks) if shocked <= start else max(marks)
    mine: dict[int, float | None] = {n.id: None for n in nodes if n.account}
    for r in out.liquidations:
        if r.node in mine and mine[r.node] is None:
            mine[r.node] = r.time_s
    return Reach(abs(extreme - shocked) / start * 100, mine)


def reach_at(scenario: Scenario, nodes: list[Node], shock: float) -> Reach:
    return reach(nodes, propagate(scenario, nodes, shock))


def flips(thin: Reach, deep: Reach) -> bool:
    """One of this account's positions is liquidated on one book and not on the other."""
    return any(
        (thin.liquidated_s[k] is None) != (deep.liquidated_s[k] is None) for k in thin.liquidated_s
    )


def jumps(thin: Reach, point: Reach, deep: Reach) -> bool:
    """The cascade's reach more than doubles (``REACH_RATIO``) with a quarter less depth,
    or more than halves with a quarter more: a tipping point, not a proportional change."""

    def more(a: float, b: float) -> bool:
        return a >= REACH_RATIO * b and a - b >= REACH_MIN_PCT

    return more(thin.beyond_pct, point.beyond_pct) or more(point.beyond_pct, deep.beyond_pct)


def runs_on_from(
    scenario: Scenario, nodes: list[Node], shock: float, point: Reach, far_pct: float
) -> float | None:
    """The smallest shock (same sign, up to ``SEARCH_UP_TO`` x) from which the cascade at
    the snapshot's depth reaches halfway from ``point``'s reach to ``far_pct``; None when it
    already does at ``shock`` or not within the search."""
    target = (point.beyond_pct + far_pct) / 2
    if point.beyond_pct >= target:
        return None
    lo, hi = shock, shock * SEARCH_UP_TO
    if reach_at(scenario, nodes, hi).beyond_pct < target:
        return None
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        if reach_at(scenario, nodes, mid).beyond_pct >= target:
            hi = mid
        else:
            lo = mid
    return round(hi, 2)


def depth_range(
    scenario: Scenario, nodes: list[Node], out: Outcome
) -> tuple[dict[str, Any], Reach, Reach]:
    """The shock's outcome on a thinner and a thicker book (the range, and words when it is
    borderline), and the two propagations (thin, deep)."""
    shock = out.shock_pct
    point = reach(nodes, out)
    thin = reach_at(scaled(scenario, 1 - DEPTH_NOISE), nodes, shock)
    deep = reach_at(scaled(scenario, 1 + DEPTH_NOISE), nodes, shock)
    tipping, flipped = jumps(thin, point, deep), flips(thin, deep)
    doc: dict[str, Any] = {
        "depth_noise": DEPTH_NOISE,
        "beyond_shock_pct": [round(deep.beyond_pct, 4), round(thin.beyond_pct, 4)],
        "borderline": tipping or flipped,
    }
    if not doc["borderline"]:
        return doc, thin, deep
    noise = f"{DEPTH_NOISE:.0%}"
    reaches = (
        f"on the book {noise} thinner the mark goes {thin.beyond_pct:.2f}% beyond the shock, "
        f"on this snapshot {point.beyond_pct:.2f}%, {noise} thicker {deep.beyond_pct:.2f}%"
    )
    if tipping:
        tip = runs_on_from(scenario, nodes, shock, point, max(thin.beyond_pct, point.beyond_pct))
        doc["runs_on_from_shock_pct"] = tip
        text = (
            "borderline: this cascade sits near a tipping point (a book's depth changes by "
            f"about {noise} from one moment to the next): {reaches}"
        )
        if tip is not None:
            text += f"; on this snapshot it runs on from a shock of about {tip:+g}%"
    else:
        text = (
            "borderline: a position's liquidation price sits near the end of this cascade "
            f"(a book's depth changes by about {noise} from one moment to the next): {reaches}"
        )
    doc["sentence"] = text + ". Read the outcome as that range, not as one number."
    return doc, thin, deep


def position_range(thin: Reach, deep: Reach, node: int) -> list[float | None]:
    """[thick book, thin book] time to liquidation (None: not liquidated)."""
    return [deep.liquidated_s.get(node), thin.liquidated_s.get(node)]
