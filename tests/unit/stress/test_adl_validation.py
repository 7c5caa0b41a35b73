"""`risk stress`'s ADL verdict against the simulator (perpbot/stress/validate_adl.py): a
down shock into a leveraged crowd, an insurance fund, and an account short (the side an
ADL closes). The truth is the simulator's state: its fund, its crowd liquidation records
and the account's ADL orders and position."""

from __future__ import annotations

import math
from typing import Any

import pytest

from perpbot.sim.assemble import build_engine
from perpbot.sim.engine import Engine
from perpbot.stress.validate import STEP_MS, SYMBOL, relative_error
from perpbot.stress.validate_adl import (
    SHORT_QTY,
    AdlCase,
    AdlOutcome,
    adl_config,
    open_short,
    predict,
    scenario_from_engine,
    simulate,
)


def _run(fund: float) -> tuple[AdlOutcome, AdlOutcome, Engine, Any]:
    case = AdlCase(-4.0, 1.0, leverage_median=20.0, traders=4000, trader_qty=0.1,
                   level_qty=0.1, seed=1, horizon_s=20.0, insurance_fund=fund)  # fmt: skip
    engine = build_engine(adl_config(case))
    acct = open_short(engine)
    engine.clock.advance(STEP_MS)
    engine.sync()
    predicted = predict(scenario_from_engine(engine, case, acct))
    return predicted, simulate(engine, case, acct), engine, acct


def _position(engine: Engine, acct: Any) -> float:
    return sum(pv.spec.qty(pv.pos.amt) for pv in engine.view(acct).positions)


def test_a_thin_fund_and_a_deep_cascade_deleverage_the_winner_as_the_model_says() -> None:
    predicted, simulated, engine, acct = _run(0.0)
    print(f"crowd losses past bankruptcy: predicted {predicted.loss:,.0f}, "
          f"simulated {simulated.loss:,.0f}")  # fmt: skip
    assert predicted.risk == "high" and predicted.deleveraged
    # the simulator: the first loss the empty fund could not pay closed the account's
    # short at that crowd trader's bankruptcy price
    assert simulated.deleveraged and simulated.adl_qty == pytest.approx(SHORT_QTY)
    assert _position(engine, acct) == 0.0
    (order,) = [o for o in engine.orders.values() if o.account == acct.api_key
                and o.orig_type == "ADL"]  # fmt: skip
    first = next(r for r in engine.crowd_liquidations if float(r["autoDeleveraged"]) > 0)
    spec = engine.specs[SYMBOL]
    assert order.price == math.ceil(first["bankruptcyPrice"] / spec.tick_f - 1e-9)
    assert first["loss"] > 0 and first["fill"] < first["bankruptcyPrice"]
    err = relative_error(predicted.loss, simulated.loss)
    assert err is not None and err <= 0.35


def test_an_ample_fund_pays_every_loss_and_nobody_is_deleveraged() -> None:
    fund = 1_000_000.0
    predicted, simulated, engine, acct = _run(fund)
    assert predicted.risk == "low" and not predicted.deleveraged
    assert not simulated.deleveraged and _position(engine, acct) == pytest.approx(-SHORT_QTY)
    # the fund paid each loss past bankruptcy and kept each surplus before it
    records = engine.crowd_liquidations
    assert any(r["loss"] > 0 for r in records) and any(r["loss"] < 0 for r in records)
    assert engine.insurance_fund == pytest.approx(fund - sum(r["loss"] for r in records))
    assert all(r["autoDeleveraged"] == "0.000" for r in records)
