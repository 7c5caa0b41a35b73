"""The crowd's liquidation clusters: how much open interest liquidates at which price.

A crowd position opened at ``entry`` with leverage ``L`` (isolated, maintenance-margin
rate ``m``) is liquidated when the mark reaches ``entry x (1 -+ (1/L - m))`` (long / short),
Binance's rule for a single position. The leverage distribution (log-normal) and the spread
of entries around the current price are integrated on a fixed quantile grid (no sampling:
the same inputs always give the same clusters), and the liquidation prices are binned into
clusters of ``bin_pct`` of the price: the graph's nodes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

from perpbot.stress.inputs import Crowd

LEVERAGE_QUANTILES = 64
ENTRY_QUANTILES = 9
BIN_PCT = 0.05  # cluster width, percent of the price


@dataclass(slots=True)
class Cluster:
    """Crowd positions of one side whose liquidation prices fall in one price bin."""

    symbol: str
    side: str  # "long" (liquidated by selling, below the price) | "short"
    price: float  # the bin's level nearest to the current price (where it starts to go)
    qty: float  # base units
    bankruptcy: float  # qty-weighted bankruptcy price (margin fully used)
    leverage: float  # qty-weighted mean leverage


def _midpoints(n: int) -> list[float]:
    return [(i + 0.5) / n for i in range(n)]


def clusters_for(
    symbol: str, crowd: Crowd, price: float, bin_pct: float = BIN_PCT
) -> list[Cluster]:
    """Long clusters (highest first) then short clusters (lowest first)."""
    normal = NormalDist()
    levs = [
        min(
            crowd.leverage_max,
            max(1.0, crowd.leverage_median * math.exp(crowd.leverage_sigma * normal.inv_cdf(q))),
        )
        for q in _midpoints(LEVERAGE_QUANTILES)
    ]
    entries = [
        price * (1.0 + crowd.entry_spread * normal.inv_cdf(q)) for q in _midpoints(ENTRY_QUANTILES)
    ]
    cell = 1.0 / (LEVERAGE_QUANTILES * ENTRY_QUANTILES)
    out: list[Cluster] = []
    for side, share in (("long", crowd.long_share), ("short", 1.0 - crowd.long_share)):
        sign = -1.0 if side == "long" else 1.0
        qty_each = crowd.open_interest * share * cell
        if qty_each <= 0:
            continue
        bins: dict[int, list[float]] = {}  # bin -> [qty, qty x bankruptcy, qty x leverage]
        width = price * bin_pct / 100.0
        for lev in levs:
            cushion = 1.0 / lev - crowd.mmr
            for entry in entries:
                liq = entry * (1.0 + sign * cushion)
                if liq <= 0:
                    continue
                bankrupt = entry * (1.0 + sign / lev)
                key = math.floor((liq - price) / width)
                acc = bins.setdefault(key, [0.0, 0.0, 0.0])
                acc[0] += qty_each
                acc[1] += qty_each * bankrupt
                acc[2] += qty_each * lev
        for key, (qty, bank, lev_sum) in bins.items():
            level = price + (key + 1) * width if side == "long" else price + key * width
            out.append(Cluster(symbol, side, level, qty, bank / qty, lev_sum / qty))
    longs = sorted((c for c in out if c.side == "long"), key=lambda c: -c.price)
    shorts = sorted((c for c in out if c.side == "short"), key=lambda c: c.price)
    return longs + shorts
