"""Borderline cascades are reported as ranges; the simulator's own run is the truth."""

from __future__ import annotations

from typing import Any

from perpbot.stress import explain
from perpbot.stress.cascade import build_nodes
from perpbot.stress.ranges import reach_at, scaled
from perpbot.stress.validate import (
    STEP_MS,
    Case,
    build_engine,
    open_account,
    range_error,
    scenario_from_engine,
    sim_config,
    simulate,
)


def _case(shock: float, beyond: float, level_qty: float, seed: int) -> Case:
    # bench/stress.py's scenarios: 4000 crowd traders of 0.1 BTC at a median 20x
    return Case(shock, beyond, leverage_median=20.0, traders=4000, trader_qty=0.1,
                level_qty=level_qty, seed=seed, horizon_s=60.0)  # fmt: skip


def _model_and_engine(case: Case) -> tuple[Any, dict[str, Any], Any, Any]:
    engine = build_engine(sim_config(case))
    acct = open_account(engine, case)
    engine.clock.advance(STEP_MS)
    engine.sync()
    scenario = scenario_from_engine(engine, case, acct)
    return scenario, explain.run(scenario), engine, acct


def test_a_cascade_at_a_tipping_point_is_a_range_and_the_simulator_runs_on() -> None:
    # docs/stress.md's worst case: a 2 % shock into 0.1 BTC levels, seed 7, the account's
    # liquidation 1.5 % beyond. The snapshot's cascade stops after 1.4 % and spares the
    # account; the simulator's runs on and liquidates it: a point answer was wrong
    case = _case(-2.0, 1.5, 0.1, 7)
    scenario, result, engine, acct = _model_and_engine(case)
    (shock,) = result["shocks"]
    span = shock["range"]
    assert span["borderline"] and "tipping point" in span["sentence"]
    deep, thin = span["beyond_shock_pct"]
    point = shock["symbols"]["BTCUSDT"]["beyond_shock_pct"]
    assert deep < point < thin and thin >= 2 * point
    (mine,) = shock["positions"]
    assert not mine["liquidated"] and mine["undecided"] and "undecided" in mine["sentence"]
    thick_s, thin_s = mine["time_to_liquidation_range_s"]
    assert thick_s is None and thin_s is not None
    # the shock from which the snapshot's cascade runs on: a bigger one, and it does run on
    tip = span["runs_on_from_shock_pct"]
    assert tip < case.shock_pct and f"{tip:+g}%" in span["sentence"]
    nodes = build_nodes(scenario)
    halfway = (point + thin) / 2
    assert reach_at(scenario, nodes, tip).beyond_pct >= halfway
    assert reach_at(scenario, nodes, tip * 0.97).beyond_pct < halfway
    # the words and the table carry the range
    assert any("borderline" in line for line in explain.lines(result))
    assert f"({deep:.2f}-{thin:.2f}%)" in explain.table_rows(result)[0][3]
    # the simulator's truth: liquidated, at about the thin book's time (the validation's 35 %)
    sim = simulate(engine, case, acct)
    assert sim.time_to_liq_s is not None
    assert abs(sim.time_to_liq_s - thin_s) <= 0.35 * sim.time_to_liq_s
    assert sim.move_pct > point  # it ran on past the snapshot's point answer


def test_a_clear_cut_shock_is_a_point_and_the_simulator_agrees() -> None:
    case = _case(-1.0, 0.3, 0.3, 1)
    _scenario, result, engine, acct = _model_and_engine(case)
    (shock,) = result["shocks"]
    assert shock["range"]["borderline"] is False and "sentence" not in shock["range"]
    (mine,) = shock["positions"]
    assert mine["time_to_liquidation_range_s"] == [None, None] and "undecided" not in mine
    assert not any("borderline" in line for line in explain.lines(result))
    assert "(" not in explain.table_rows(result)[0][3]
    assert simulate(engine, case, acct).time_to_liq_s is None


def test_scaled_books_keep_their_prices() -> None:
    scenario, _result, _engine, _acct = _model_and_engine(_case(-1.0, 0.3, 0.3, 1))
    thin = scaled(scenario, 0.75)
    for sym, book in scenario.books.items():
        assert [p for p, _ in thin.books[sym].bids] == [p for p, _ in book.bids]
        assert [q for _, q in thin.books[sym].asks] == [0.75 * q for _, q in book.asks]


def test_range_error_is_zero_inside_and_the_distance_to_the_nearer_end_outside() -> None:
    assert range_error((None, 4.0), 4.8) == 0.0  # "never" to 4.0 s holds 4.8 s
    assert range_error((None, 4.0), None) == 0.0
    assert range_error((3.0, 2.0), 2.5) == 0.0
    assert range_error((3.0, 2.0), 4.0) == 0.25  # 1 s past the later end, of 4 s
    assert range_error((3.0, 2.0), None) == 1.0  # both ends liquidated, the simulator not
    assert range_error((None, None), 5.0) == 1.0  # neither end liquidated, the simulator did
