"""``[market] shock_correlation``: the symbols' exogenous shocks correlate by rho; at 0
nothing changes. The truth is the simulator's own prices, step by step."""

from __future__ import annotations

import math
import statistics
from typing import Any

import pytest

from perpbot.sim.assemble import build_engine
from perpbot.sim.config import SimConfig
from perpbot.sim.engine import Engine

STEP_MS = 200


def _engine(**market: Any) -> Engine:
    quiet = {"taker_rate": 0.0, "premium_vol": 0.0, "premium_regime_vol": 0.0}
    return build_engine(
        SimConfig.model_validate({"seed": 3, "clock": "manual", "market": {**quiet, **market}})
    )


def _returns(engine: Engine, steps: int) -> dict[str, list[float]]:
    """Each symbol's log-return of its mid over each step."""
    out: dict[str, list[float]] = {s: [] for s in engine.markets}
    for _ in range(steps):
        before = {s: m.mid for s, m in engine.markets.items()}
        engine.clock.advance(STEP_MS)
        engine.sync()
        for s, m in engine.markets.items():
            out[s].append(math.log(m.mid / before[s]))
    return out


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.8])
def test_the_walks_correlate_by_rho(rho: float) -> None:
    r = _returns(_engine(volatility=0.001, jump_rate=0.0, shock_correlation=rho), 4000)
    measured = statistics.correlation(r["BTCUSDT"], r["ETHUSDT"])
    # 4000 draws: the sample correlation's standard error is below 0.016
    assert measured == pytest.approx(rho, abs=0.05), measured


def test_at_zero_the_prices_are_those_of_a_market_without_the_setting() -> None:
    plain = _returns(_engine(volatility=0.001), 500)
    zero = _returns(_engine(volatility=0.001, shock_correlation=0.0), 500)
    assert plain == zero
    assert statistics.correlation(plain["BTCUSDT"], plain["ETHUSDT"]) != 0.0


def test_with_rho_one_every_jump_is_common_to_every_symbol() -> None:
    r = _returns(_engine(volatility=0.0, jump_rate=0.5, shock_correlation=1.0), 300)
    jumps = [i for i, x in enumerate(r["BTCUSDT"]) if abs(x) > 1e-9]
    assert len(jumps) > 10
    assert jumps == [i for i, x in enumerate(r["ETHUSDT"]) if abs(x) > 1e-9]
    assert r["BTCUSDT"] == pytest.approx(r["ETHUSDT"], abs=1e-6)


def test_a_jump_moves_the_other_symbols_by_rho_times_it() -> None:
    for rho in (0.0, 0.5):
        engine = _engine(volatility=0.0, jump_rate=0.0, shock_correlation=rho)
        eth = engine.markets["ETHUSDT"]
        before = eth.mid
        engine.jump("BTCUSDT", -4.0)
        assert eth.mid / before - 1 == pytest.approx(-0.04 * rho, abs=1e-12)
        assert engine.markets["BTCUSDT"].mid == pytest.approx(60000 * 0.96)
