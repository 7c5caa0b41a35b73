"""How far selling (or buying) a quantity moves the price, from the book's depth.

``touch_after(q)``: how far from the touch the first level with liquidity left sits once
``q`` has been taken (books are granular: sweeping a level moves the touch a whole gap;
past the snapshot, the levels of its deeper half continue, same gap and size). A
liquidation is a market order per liquidated position: it walks the book that far (the
transient move) and ``impact_permanent`` of the move stays in the price, the rest of the
taken depth refilling with a half-life (a resilient book, as in Obizhaeva & Wang 2013).
``Impact`` keeps the depth still missing per side, so orders in quick succession walk
deeper.
"""

from __future__ import annotations

import bisect
import itertools
import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import NamedTuple

from perpbot.stress.inputs import Book

SIZE_QUANTILES = 32
SMOOTH_LEVELS = 5
DRAWS = 16  # draws of the levels' sizes a cascade's walks are averaged over


@dataclass(slots=True)
class DepthCurve:
    """Cumulative size against distance from the touch, for one side of a book."""

    distances: list[float]  # ascending, 0 at the touch
    cumulative: list[float]  # size available up to that distance
    tail_gap: float  # price gap between levels past the snapshot
    tail_size: float  # size per level past the snapshot

    @classmethod
    def of(cls, levels: list[tuple[float, float]], smooth: int = SMOOTH_LEVELS) -> DepthCurve:
        """``smooth``: each level's size is the mean over that many levels either side (one
        snapshot's sizes are noise; a cascade walks the same top levels again and again)."""
        touch = levels[0][0]
        sizes = [q for _, q in levels]
        if smooth > 0:
            sizes = [
                sum(sizes[max(0, i - smooth) : i + smooth + 1])
                / len(sizes[max(0, i - smooth) : i + smooth + 1])
                for i in range(len(sizes))
            ]
        distances, cumulative, total = [], [], 0.0
        for (px, _), qty in zip(levels, sizes, strict=True):
            total += qty
            distances.append(abs(px - touch))
            cumulative.append(total)
        half = len(levels) // 2
        deep = levels[half:] if len(levels) > 1 else levels
        gap = (distances[-1] - distances[half]) / max(1, len(deep) - 1)
        if gap <= 0:  # a single level: assume one every 0.01 % of the price
            gap = touch * 1e-4
        size = sum(q for _, q in deep) / len(deep)
        return cls(distances, cumulative, gap, max(size, 1e-12))

    def touch_after(self, taken: float) -> float:
        """Distance from the original touch to the first level with liquidity left."""
        if taken <= 0:
            return 0.0
        i = bisect.bisect_right(self.cumulative, taken)
        if i < len(self.cumulative):
            return self.distances[i]
        beyond = taken - self.cumulative[-1]
        return self.distances[-1] + self.tail_gap * (math.floor(beyond / self.tail_size) + 1)


@dataclass(slots=True)
class DepthDraws:
    """The depth a stream of orders meets, averaged over the ways the levels' sizes vary.

    A book requotes its sizes all the time, and a cascade's orders meet the same few top
    levels again and again, each time with other sizes. How far an order walks from a given
    depleted depth is not linear in the sizes (a level is swept whole or not at all), so
    one smoothed snapshot understates it. Each draw keeps the snapshot's profile
    (each level the mean of its neighbours) and gives the levels the snapshot's
    own size-to-profile ratios in another, fixed order; ``touch_after`` is the mean over
    the draws. No random numbers: the same book always gives the same draws."""

    draws: list[DepthCurve]

    @classmethod
    def of(cls, levels: list[tuple[float, float]], n: int = DRAWS) -> DepthDraws:
        n_levels = len(levels)
        profile = DepthCurve.of(levels)  # smoothed
        smooth = [b - a for a, b in itertools.pairwise([0.0, *profile.cumulative])]
        ratios = [q / max(m, 1e-12) for (_, q), m in zip(levels, smooth, strict=True)]
        draws = []
        for k in range(n):
            stride = _coprime(n_levels, 2 * k + 1)
            sizes = [smooth[i] * ratios[(i * stride + 7 * k) % n_levels] for i in range(n_levels)]
            drawn = [(px, q) for (px, _), q in zip(levels, sizes, strict=True)]
            draws.append(DepthCurve.of(drawn, smooth=0))
        return cls(draws)

    def touch_after(self, taken: float) -> float:
        return sum(d.touch_after(taken) for d in self.draws) / len(self.draws)


def _coprime(n: int, k: int) -> int:
    while math.gcd(n, k) != 1:
        k += 1
    return k


class Walk(NamedTuple):
    """Market orders through a side of the book; price distances from the mid's touch,
    measured from the mid before these orders, all positive."""

    walked: float  # how far the last order walked, from the touch it met
    deepest: float  # where its last fill printed: the depth still missing counts
    moved: float  # the permanent move all the orders left
    fill: float  # the last order's average fill


@dataclass(slots=True)
class OrderSizes:
    """The sizes of successive liquidation orders: positions are not all the same size, and
    a book's walk depends on it. A fixed sequence of log-normal quantiles (mean ``mean``,
    log-stdev ``sigma``) in a scrambled but repeatable order."""

    sizes: list[float]
    i: int = 0

    @classmethod
    def lognormal(cls, mean: float, sigma: float, n: int = SIZE_QUANTILES) -> OrderSizes:
        if mean <= 0:
            return cls([math.inf])
        normal = NormalDist()
        raw = [math.exp(sigma * normal.inv_cdf((k + 0.5) / n)) for k in range(n)]
        scale = mean * n / sum(raw)
        stride = 13  # coprime with n: small and large positions alternate
        return cls([raw[(k * stride) % n] * scale for k in range(n)])

    @classmethod
    def single(cls, size: float) -> OrderSizes:
        return cls([size])

    def next(self) -> float:
        size = self.sizes[self.i % len(self.sizes)]
        self.i += 1
        return size


@dataclass(slots=True)
class Impact:
    """One symbol's book under a stream of market orders."""

    bids: DepthCurve | DepthDraws
    asks: DepthCurve | DepthDraws
    permanent: float
    half_life_s: float
    missing: dict[str, float] = field(default_factory=lambda: {"sell": 0.0, "buy": 0.0})

    @classmethod
    def of(cls, book: Book, permanent: float, half_life_s: float) -> Impact:
        bids, asks = DepthDraws.of(book.bids), DepthDraws.of(book.asks)
        return cls(bids, asks, permanent, half_life_s)

    def refill(self, dt_s: float) -> None:
        keep = 0.5 ** (dt_s / self.half_life_s)
        for side in self.missing:
            self.missing[side] *= keep

    def take(self, side: str, qty: float, sizes: OrderSizes) -> Walk:
        """Market ``side`` ("sell"/"buy") orders for ``qty`` in all, one per position, sized
        by ``sizes``: what the last one did and the permanent move they all left."""
        curve = self.bids if side == "sell" else self.asks
        left, walked, deepest, moved, start, fill = qty, 0.0, 0.0, 0.0, 0.0, 0.0
        while left > 1e-12:
            q = min(left, sizes.next())
            left -= q
            before = self.missing[side]
            start = curve.touch_after(before)
            walked = curve.touch_after(before + q) - start
            deepest, fill = moved + start + walked, moved + start + walked / 2
            moved += self.permanent * walked
            self.missing[side] = (before + q) * (1.0 - self.permanent)
        return Walk(walked, deepest, moved, fill)
