"""Regimes of the random source: volatility clustering, clustered jumps, funding squeezes.

* **Volatility clustering**: the walk's volatility is multiplied by ``exp(h - s^2/2)``
  where ``h`` is an Ornstein-Uhlenbeck process with stationary stdev ``s`` =
  ``vol_cluster`` and persistence ``vol_cluster_tau_s`` (a discrete stochastic-volatility
  model: calm hours and stormy ones, mean multiplier 1). Jumps come at the
  configured rate times the squared multiplier, so they cluster in the stormy spells.
* **Funding squeezes**: Poisson events (``squeeze_per_h``); during one (mean
  ``squeeze_s`` long) the perp trades at a premium of +-``squeeze_premium`` over spot and
  drifts ``squeeze_move`` in the same direction, so the funding rate runs to its cap and
  crowded positions pay it (a short squeeze: premium and price both up).

The regimes draw from their own RNG, never the walk's: the walk's normal draws are the
same with or without them, and with every knob at 0 (the default) nothing here runs.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from perpbot.sim.config import SourceConfig


@dataclass(slots=True)
class Regimes:
    cfg: SourceConfig
    rng: random.Random
    log_vol: float = 0.0
    squeeze_sign: int = 0
    squeeze_until_ms: int = 0
    squeezes: int = 0

    @classmethod
    def create(cls, cfg: SourceConfig, seed: int) -> Regimes | None:
        """The regimes ``cfg`` asks for, or None when they are all off (the plain walk)."""
        if cfg.kind != "random" or (cfg.vol_cluster == 0 and cfg.squeeze_per_h == 0):
            return None
        return cls(cfg, random.Random(seed ^ 0x5EC1A1))

    def advance(self, dt_s: float, now_ms: int) -> None:
        c, rng = self.cfg, self.rng
        if c.vol_cluster > 0:
            decay = math.exp(-dt_s / c.vol_cluster_tau_s)
            noise = c.vol_cluster * math.sqrt(1.0 - decay * decay) * rng.gauss(0.0, 1.0)
            self.log_vol = self.log_vol * decay + noise
        if self.squeeze_sign and now_ms >= self.squeeze_until_ms:
            self.squeeze_sign = 0
        starts = c.squeeze_per_h > 0 and not self.squeeze_sign
        if starts and rng.random() < c.squeeze_per_h * dt_s / 3600.0:
            self.squeeze_sign = 1 if rng.random() < 0.5 else -1
            length_s = rng.expovariate(1.0 / c.squeeze_s)
            self.squeeze_until_ms = now_ms + int(length_s * 1000)
            self.squeezes += 1

    @property
    def vol_scale(self) -> float:
        s = self.cfg.vol_cluster
        return math.exp(self.log_vol - s * s / 2.0)

    def drift(self, dt_s: float) -> float:
        """The log-return a squeeze adds over ``dt_s`` seconds."""
        return self.squeeze_sign * self.cfg.squeeze_move * dt_s / self.cfg.squeeze_s

    @property
    def premium(self) -> float:
        return self.squeeze_sign * self.cfg.squeeze_premium
