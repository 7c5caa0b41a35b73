"""Index, mark price and funding rate of one symbol, as Binance defines them.

* **Index**: a weighted basket of synthetic spot venues. Each venue quotes the spot price
  (the perp mid without its premium) with its own persistent bias and per-update noise,
  refreshes at its own pace (so some quotes are stale), and goes down now and then
  (outages). A venue is left out while it is down, while its quote is older than
  ``venue_stale_s``, or when it deviates more than 5 % from the venues' median; the
  index keeps its last value if no venue is left. (Binance: "Price Index" = weighted
  average of spot prices from several exchanges, with outlier and staleness handling.)
* **Premium**: the perp trades around the spot price with a premium that follows a
  mean-reverting process whose own mean drifts slowly (regimes), so funding changes sign.
* **Premium index** ``P = [max(0, impact bid - index) - max(0, index - impact ask)] /
  index``, impact prices for the Impact Margin Notional, sampled every 5 s; funding uses
  their time-weighted average (weights 1..n) over the interval.
* **Funding rate** ``F = [P_avg + clamp(I - P_avg, -0.05 %, +0.05 %)] / (8 / N)`` for an
  N-hour interval (Binance's formula since 2025-09-18), capped at ``rate_cap``; the
  interest rate ``I`` is 0.01 %.
* **Mark price** ``median(price 1, price 2, last price)`` with ``price 1 = index x (1 +
  funding rate x time to funding / interval)`` and ``price 2 = index + 30-second moving
  average of (mid - index)`` (an exponential average here).

Index protections, as Binance's FAQ: a venue deviating more than 5 % from the median gets
weight 0; if more than one deviates, the median itself is the index; a venue whose quote
has not updated for ``venue_stale_s`` (10 s) gets weight 0.

Own RNG per symbol (seeded from the seed and the symbol), so the random walk's sequence,
which existing seeded tests rely on, is untouched.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, field

from perpbot.sim.config import MarketConfig

EIGHT_HOURS_MS = 8 * 3_600_000
INTEREST_PER_8H = 0.0001
CLAMP = 0.0005
SAMPLE_MS = 5_000
BASIS_WINDOW_S = 30.0  # Binance moved price 2 to a 30-second basis on 2025-09-18
OUTLIER = 0.05


@dataclass(slots=True)
class Venue:
    weight: float
    refresh_ms: int
    bias: float = 0.0
    price: float = 0.0
    quoted_ms: int = 0
    down_until: int = 0


@dataclass(slots=True)
class Pricing:
    """Per-symbol index basket, premium process, premium-index samples and mark."""

    cfg: MarketConfig
    rng: random.Random
    interval_ms: int
    fixed_rate: float | None
    rate_cap: float
    index: float = 0.0
    premium: float = 0.0
    regime: float = 0.0
    basis_avg: float = 0.0
    venues: list[Venue] = field(default_factory=list)
    n_samples: int = 0
    weighted_sum: float = 0.0  # sum of i x sample_i, i = 1..n (Binance's time weighting)
    last_sample: float = 0.0
    next_sample_ms: int = 0
    last_rate: float = 0.0
    squeeze: float = 0.0  # extra premium of a funding squeeze (regimes.py)

    @classmethod
    def create(
        cls,
        cfg: MarketConfig,
        seed: int,
        mid: float,
        now_ms: int,
        interval_ms: int,
        fixed_rate: float | None,
        rate_cap: float,
    ) -> Pricing:
        rng = random.Random(seed ^ 0x1D3E5)
        p = cls(cfg, rng, interval_ms, fixed_rate, rate_cap)
        n = max(1, cfg.index_venues)
        for i in range(n):
            weight = rng.uniform(0.5, 1.5)
            refresh = int(cfg.venue_refresh_ms * (1 + 2 * i / max(1, n - 1)))
            bias = rng.gauss(0.0, cfg.venue_bias)
            p.venues.append(Venue(weight, refresh, bias, mid * (1 + bias), now_ms))
        p.index = mid
        p.next_sample_ms = now_ms - now_ms % SAMPLE_MS + SAMPLE_MS
        p.last_rate = p.rate_from([]) if fixed_rate is None else fixed_rate
        return p

    # -- evolution -------------------------------------------------------------------
    def step(self, dt_s: float, now_ms: int, mid: float) -> None:
        """Advance the premium process and the venues; recompute the index."""
        c, rng = self.cfg, self.rng
        if c.premium_regime_vol > 0:
            self.regime = _ou(rng, self.regime, dt_s, c.premium_regime_tau_s, c.premium_regime_vol)
        if c.premium_vol > 0:
            dev = _ou(rng, self.premium - self.regime, dt_s, c.premium_tau_s, c.premium_vol)
            self.premium = self.regime + dev
        else:
            self.premium = self.regime
        spot = mid / (1.0 + self.premium + self.squeeze)
        for v in self.venues:
            if v.down_until > now_ms:
                continue
            if c.venue_outage_per_h > 0 and rng.random() < c.venue_outage_per_h * dt_s / 3600:
                v.down_until = now_ms + int(rng.expovariate(1.0 / c.venue_outage_s) * 1000)
                continue
            if now_ms - v.quoted_ms >= v.refresh_ms:
                v.price = spot * (1.0 + v.bias + rng.gauss(0.0, c.venue_noise))
                v.quoted_ms = now_ms
        self.index = self.basket(now_ms)
        alpha = 1.0 - math.exp(-dt_s / BASIS_WINDOW_S)
        self.basis_avg += alpha * ((mid - self.index) - self.basis_avg)

    def shift(self, factor: float, now_ms: int) -> None:
        """A one-shot move of the whole market (a jump): venues, index and basis follow."""
        for v in self.venues:
            v.price *= factor
            v.quoted_ms = max(v.quoted_ms, now_ms - 1)
        self.index *= factor
        self.basis_avg *= factor

    def basket(self, now_ms: int) -> float:
        stale_ms = self.cfg.venue_stale_s * 1000
        live = [
            v for v in self.venues if v.down_until <= now_ms and now_ms - v.quoted_ms <= stale_ms
        ]
        if not live:
            return self.index
        median = statistics.median(v.price for v in live)
        kept = [v for v in live if abs(v.price / median - 1.0) <= OUTLIER]
        if len(live) - len(kept) > 1:
            return median
        total = sum(v.weight for v in kept)
        return sum(v.price * v.weight for v in kept) / total

    def venue_state(self, now_ms: int) -> list[dict[str, object]]:
        stale_ms = self.cfg.venue_stale_s * 1000
        return [
            {
                "price": round(v.price, 8),
                "weight": round(v.weight, 4),
                "down": v.down_until > now_ms,
                "stale": now_ms - v.quoted_ms > stale_ms,
            }
            for v in self.venues
        ]

    # -- premium index and funding ---------------------------------------------------
    def sample_due(self, now_ms: int) -> bool:
        return now_ms >= self.next_sample_ms

    def add_sample(self, now_ms: int, impact_bid: float | None, impact_ask: float | None) -> None:
        idx = self.index
        bid = impact_bid if impact_bid is not None else idx
        ask = impact_ask if impact_ask is not None else idx
        self.last_sample = (max(0.0, bid - idx) - max(0.0, idx - ask)) / idx
        self.n_samples += 1
        self.weighted_sum += self.n_samples * self.last_sample
        self.next_sample_ms = now_ms - now_ms % SAMPLE_MS + SAMPLE_MS
        if self.fixed_rate is None:
            self.last_rate = self._rate(self._average())

    def interest(self) -> float:
        return INTEREST_PER_8H

    def rate_from(self, samples: list[float]) -> float:
        """Binance's funding formula over the time-weighted average of ``samples``."""
        n = len(samples)
        avg = sum((i + 1) * p for i, p in enumerate(samples)) / (n * (n + 1) / 2) if n else 0.0
        return self._rate(avg)

    def _average(self) -> float:
        n = self.n_samples
        return self.weighted_sum / (n * (n + 1) / 2) if n else 0.0

    def _rate(self, avg: float) -> float:
        if self.fixed_rate is not None:
            return self.fixed_rate
        rate = (avg + min(CLAMP, max(-CLAMP, INTEREST_PER_8H - avg))) * (
            self.interval_ms / EIGHT_HOURS_MS
        )
        return min(self.rate_cap, max(-self.rate_cap, rate))

    def settle(self) -> float:
        """The rate charged at a funding time; starts the next interval's average."""
        rate = self._rate(self._average())
        self.n_samples, self.weighted_sum = 0, 0.0
        self.last_rate = rate
        return rate

    def premium_index(self) -> float:
        return self.last_sample

    def mark(self, last_price: float, now_ms: int, next_funding_ms: int) -> float:
        left = max(0, next_funding_ms - now_ms) / self.interval_ms
        price1 = self.index * (1.0 + self.last_rate * left)
        price2 = self.index + self.basis_avg
        return statistics.median((price1, price2, last_price))


def _ou(rng: random.Random, x: float, dt_s: float, tau_s: float, sd: float) -> float:
    """One exact Ornstein-Uhlenbeck step toward 0 with stationary stdev ``sd``."""
    decay = math.exp(-dt_s / tau_s)
    return x * decay + sd * math.sqrt(1.0 - decay * decay) * rng.gauss(0.0, 1.0)
