"""The summary numbers: PnL split, fills, maker share, slippage, rejections, drawdown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from perpbot.report.data import load_run
from perpbot.report.runs import run_info
from perpbot.report.series import RunSeries, build_series
from perpbot.report.tables import compute, drawdown_numbers, fill_numbers, sections
from tests.unit.report.report_synth import T0, event, make_fill


def test_fill_numbers_by_hand() -> None:
    fills = [
        make_fill(0, T0, "buy", 100.0, 99.0),  # taker (i % 3 == 0), paid 1% more: +101.01 bps
        make_fill(1, T0 + 1, "sell", 100.0, 100.5),  # maker, got 0.5 less: +49.75 bps
        make_fill(2, T0 + 2, "sell", 101.0, None),  # maker, no decision price
    ]
    fills[1]["slippage_bps"] = None  # recomputed from the decision price when absent
    fills[2]["realized_pnl"] = 0.3
    n = fill_numbers(fills)
    assert (n["count"], n["buys"], n["sells"], n["maker"], n["taker"]) == (3, 1, 2, 2, 1)
    assert n["maker_share"] == pytest.approx(2 / 3)
    assert n["volume"] == pytest.approx(0.2 + 0.2 + 0.202)
    assert n["fees"] == pytest.approx(0.2 * 0.0005 + 0.2 * 0.0002 + 0.202 * 0.0002)
    slip = n["slippage"]
    b1, b2 = (100 - 99) / 99 * 1e4, (100.5 - 100) / 100.5 * 1e4
    assert slip["fills"] == 2
    assert slip["mean_bps"] == pytest.approx((b1 + b2) / 2)
    assert slip["weighted_bps"] == pytest.approx((b1 + b2) / 2)  # equal notionals
    assert slip["worst_bps"] == pytest.approx(b1)


def test_fill_numbers_empty_and_unknown_maker() -> None:
    n = fill_numbers([])
    assert n["count"] == 0 and n["maker_share"] is None and n["slippage"]["mean_bps"] is None
    f = make_fill(1, T0, "buy", 10.0, None)
    f["maker"], f["fee_currency"] = None, "BNB"
    n = fill_numbers([f, make_fill(2, T0, "buy", 10.0, None)])
    assert n["maker_share"] == 1.0 and set(n["fees_by_currency"]) == {"BNB", "USDT"}


def test_drawdown_numbers() -> None:
    s = RunSeries(equity=[(T0 + i, v) for i, v in enumerate([100, 110, 99, 105, 120, 108])])
    d = drawdown_numbers(s)
    assert d["max"] == pytest.approx(12.0) and d["max_pct"] == pytest.approx(10.0)
    assert d["at"] == T0 + 5 and d["peak_equity"] == 120 and d["start_equity"] == 100
    flat = drawdown_numbers(RunSeries(equity=[(T0, 5.0), (T0 + 1, 6.0)]))
    assert flat["max"] == 0.0 and flat["at"] is None


def test_compute_matches_the_fills_journal(write_run: Callable[..., Path]) -> None:
    run = load_run(write_run(ticks=40, n_fills=10))
    n = compute(run, build_series(run))
    fills = run.fills
    realized = sum(f["realized_pnl"] for f in fills)
    fees = sum(f["fee"] for f in fills)
    assert n["fills"]["count"] == 10
    assert n["pnl"]["realized"] == pytest.approx(realized)
    assert n["pnl"]["fees"] == pytest.approx(fees)
    assert n["pnl"]["funding"] == -0.125
    assert n["pnl"]["net"] == pytest.approx(realized - fees - 0.125)
    assert n["rejections"] == {"RISK_MAX_NOTIONAL": 2} and n["rejections_source"] == "summary"
    assert run.notes == []  # the synthetic summary agrees with its journal


def test_disagreeing_summary_is_said(write_run: Callable[..., Path]) -> None:
    d = write_run(net_pnl=99.0)
    run = load_run(d)
    assert run.summary is not None
    run.summary["fills"] = 3
    compute(run, build_series(run))
    assert any("counts 3 fills" in n for n in run.notes)
    assert any("net PnL +99.0000" in n for n in run.notes)


def test_without_summary_rejections_come_from_events(write_run: Callable[..., Path]) -> None:
    events = [
        event(T0 + 1, "reject", "RISK_PRICE_BAND"),
        event(T0 + 2, "reject", "RISK_PRICE_BAND"),
        event(T0 + 3, "reject", "EXCHANGE_InvalidOrder"),
        event(T0 + 4, "wait", "RATE_WAIT"),
    ]
    run = load_run(write_run(summary=False, events=events))
    n = compute(run, build_series(run))
    assert n["rejections"] == {"RISK_PRICE_BAND": 2, "EXCHANGE_InvalidOrder": 1}
    assert n["rejections_source"] == "events"
    assert n["pnl"]["funding"] is None and n["pnl"]["final"] is False
    assert n["pnl"]["unrealized"] == 0.5  # the last tick's
    rows = dict(r for s in sections(run_info(run), n) for r in s.rows)
    assert rows["funding"] == "unknown until stop"
    assert "estimated" in rows["net"]
    assert rows["rejected: RISK_PRICE_BAND"] == "2"


def test_sections_layout(write_run: Callable[..., Path]) -> None:
    run = load_run(write_run(rejections={}))
    n = compute(run, build_series(run))
    secs = sections(run_info(run), n)
    assert [s.title for s in secs] == ["Run", "PnL (USDT)", "Fills", "Orders", "Equity"]
    rows = dict(r for s in secs for r in s.rows)
    assert rows["rejected by reason"] == "none"
    assert rows["fills"] == "10 (5 buys, 5 sells)"
    assert rows["maker / taker"] == "60.0% / 40.0%"
    assert rows["ended"] == "duration reached"
