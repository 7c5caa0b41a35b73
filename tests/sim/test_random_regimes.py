"""The random source's regimes: volatility clustering, clustered jumps, funding squeezes.

With every regime knob at 0 (the default) the seeded walk is exactly the one other tests
rely on; with them on, the market's own state is the truth checked here.
"""

from __future__ import annotations

import itertools
import math
import statistics

from perpbot.sim.assemble import build_engine
from perpbot.sim.config import SimConfig, SymbolConfig
from perpbot.sim.engine import Engine

START_MS = 1_760_000_000_000


def _engine(
    funding_s: int = 28800, tick_ms: int = 1000, jumps: float = 0.002, **source: object
) -> Engine:
    cfg = SimConfig(
        funding={"interval_s": funding_s},
        seed=11,
        clock="manual",
        start_time_ms=START_MS,
        symbols=[SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0)],
        market={"history_minutes": 0, "taker_rate": 0.0, "tick_ms": tick_ms, "jump_rate": jumps},
        source={"kind": "random", **source},
    )
    return build_engine(cfg)


def _mids(engine: Engine, seconds: int) -> list[float]:
    out = []
    for _ in range(seconds):
        engine.clock.advance(1000)
        engine.sync()
        out.append(engine.markets["BTCUSDT"].mid)
    return out


def test_regimes_off_keep_the_seeded_walk_identical() -> None:
    plain = build_engine(
        SimConfig(
            seed=11,
            clock="manual",
            start_time_ms=START_MS,
            symbols=[SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0)],
            market={"history_minutes": 0, "taker_rate": 0.0, "tick_ms": 1000},
        )
    )
    assert _mids(plain, 600) == _mids(_engine(), 600)
    assert _engine().markets["BTCUSDT"].regimes is None


def test_volatility_clusters() -> None:
    """Realized volatility per 5 minutes spreads far wider with clustering than without
    (calm and stormy spells), while its typical level stays of the same order."""

    def window_vols(engine: Engine) -> list[float]:
        mids = _mids(engine, 4 * 3600)
        rets = [math.log(b / a) for a, b in itertools.pairwise(mids)]
        return [statistics.pstdev(rets[i : i + 300]) for i in range(0, len(rets) - 300, 300)]

    flat = window_vols(_engine(jumps=0.0))
    clustered = window_vols(_engine(jumps=0.0, vol_cluster=0.8, vol_cluster_tau_s=1200.0))
    spread = statistics.pstdev(clustered) / statistics.mean(clustered)
    assert spread > 2 * statistics.pstdev(flat) / statistics.mean(flat)
    assert max(clustered) / min(clustered) > 3
    assert 0.3 < statistics.median(clustered) / statistics.median(flat) < 3


def test_funding_squeeze_drives_premium_funding_and_price() -> None:
    """In a squeeze the premium index takes the squeeze's sign, and hourly funding runs
    far beyond what the same market pays without squeezes."""

    def run(**source: object) -> tuple[Engine, int]:
        engine = _engine(3600, 5000, **source)
        mkt = engine.markets["BTCUSDT"]
        regimes, deep = mkt.regimes, 0
        for _ in range(8 * 60):
            engine.clock.advance(60_000)
            engine.sync()
            left = regimes.squeeze_until_ms - engine.clock.now_ms() if regimes else 0
            if regimes is not None and regimes.squeeze_sign and left > 600_000:
                assert mkt.pricing.premium_index() * regimes.squeeze_sign > 0.002
                deep += 1
        return engine, deep

    calm, _ = run()
    squeezed, deep = run(squeeze_per_h=3.0, squeeze_premium=0.004, squeeze_s=1800.0)
    regimes = squeezed.markets["BTCUSDT"].regimes
    assert regimes is not None and regimes.squeezes >= 3 and deep > 10
    calm_max = max(abs(f["rate"]) for f in calm.funding_history)
    rates = [f["rate"] for f in squeezed.funding_history]
    assert max(abs(r) for r in rates) > 5 * calm_max
