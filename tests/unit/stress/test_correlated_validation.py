"""The model's correlation edges against the simulator (perpbot/stress/validate_correlated.py):
BTCUSDT is shocked, ETHUSDT's exogenous shocks correlate with it by rho, the account is long
ETHUSDT. The truth is the simulator's engine: ETHUSDT's prices and the account's
liquidation record."""

from __future__ import annotations

import pytest

from perpbot.sim.assemble import build_engine
from perpbot.stress.validate import STEP_MS, relative_error
from perpbot.stress.validate_correlated import (
    FOLLOWER,
    SHOCKED,
    PairCase,
    open_account,
    run_case,
    sim_config,
)

CASE = PairCase(-3.0, 1.0, leverage_median=20.0, traders=4000, trader_qty=0.1,
                level_qty=0.1, horizon_s=20.0, seed=1, rho=0.8)  # fmt: skip


def test_the_simulators_follower_moves_by_rho_times_the_shock_and_then_on_its_own() -> None:
    engine = build_engine(sim_config(CASE))
    open_account(engine, CASE, FOLLOWER, CASE.follower_shock_pct)
    engine.clock.advance(STEP_MS)
    engine.sync()
    eth, btc = engine.markets[FOLLOWER], engine.markets[SHOCKED]
    before = eth.index
    engine.jump(SHOCKED, CASE.shock_pct)
    # the jump moved the whole market, spot too (the mid then went on with the liquidations
    # the jump set off at once, which the index takes up only at its venues' next quotes)
    assert eth.index / before - 1 == pytest.approx(0.8 * -0.03, abs=1e-12)
    for _ in range(50):
        engine.clock.advance(STEP_MS)
        engine.sync()
    # both cascades ran, each on its own crowd
    symbols = {r["symbol"] for r in engine.crowd_liquidations}
    assert symbols == {SHOCKED, FOLLOWER}
    assert btc.mid < 60000 * 0.97 and eth.mid < 3000 * (1 - 0.024)


def test_told_the_market_as_it_is_the_model_times_the_followers_cascade() -> None:
    """With ``cross_impact = 0`` (the simulator shares only exogenous shocks) the predicted
    time to the account's liquidation in ETHUSDT is within 35 % of the simulated one; the
    default's cross-impact (1) moves ETHUSDT further through BTCUSDT's liquidations than
    the simulator does, and liquidates sooner."""
    (as_is, default), sim = run_case(CASE, (0.0, 1.0))
    assert sim.time_to_liq_s is not None and as_is.time_to_liq_s is not None
    err = relative_error(as_is.time_to_liq_s, sim.time_to_liq_s)
    print(f"ETHUSDT time to liquidation: predicted {as_is.time_to_liq_s} s (cross_impact 0), "
          f"{default.time_to_liq_s} s (1); simulated {sim.time_to_liq_s} s")  # fmt: skip
    assert err is not None and err <= 0.35
    assert as_is.cross_pct == 0.0 and default.cross_pct > 1.0
    assert default.move_pct > sim.move_pct + 1.0  # the cross-impact the simulator lacks
    assert default.time_to_liq_s is not None and default.time_to_liq_s < sim.time_to_liq_s
