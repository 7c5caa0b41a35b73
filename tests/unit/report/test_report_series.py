"""Series out of ticks: the runner's fields and the rate/index extras, read by shape."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from perpbot.report.data import load_run
from perpbot.report.extras import index_prices, rate_figures
from perpbot.report.series import build_series
from tests.unit.report.report_synth import SYMBOL, T0, event


@pytest.mark.parametrize(
    ("rate", "expected"),
    [
        ({"used": 120, "limit": 2400, "nominal": 2400}, (120.0, 2400.0, 2400.0)),
        ({"weight_used": 5, "weight_limit": 1200}, (5.0, 1200.0, None)),
        (
            {"orders": {"used": 3, "limit": 300}, "weight": {"used": 80, "limit": 1800}},
            (80.0, 1800.0, None),
        ),
        ({"request_weight": {"used_1m": 7, "budget": 600, "nominal": 2400}}, (7.0, 600.0, 2400.0)),
        ({"used": "n/a"}, (None, None, None)),
        (None, (None, None, None)),
        ("429", (None, None, None)),
    ],
)
def test_rate_figures_shapes(rate: object, expected: tuple[float | None, ...]) -> None:
    assert rate_figures(rate) == expected


def test_index_prices_shapes() -> None:
    eth = "ETH/USDT:USDT"
    assert index_prices({SYMBOL: 60000.5}) == {SYMBOL: 60000.5}
    assert index_prices({SYMBOL: {"price": 1.0, "healthy": True, "sources": []}}) == {SYMBOL: 1.0}
    assert index_prices({"prices": {eth: "3000"}, "health": "ok"}) == {eth: 3000.0}
    assert index_prices({SYMBOL: {"price": None, "healthy": False}}) == {}
    assert index_prices([1, 2]) == {}


def test_series_from_ticks_with_extras(write_run: Callable[..., Path]) -> None:
    def extra(i: int) -> dict[str, object]:  # the shapes the limiter and risk layer write
        return {
            "rate": {
                "weight_used": 10 * i,
                "weight_limit": 2400 if i < 10 else 1200,
                "weight_nominal": 2400,
                "orders": {"10s": {"used": 1, "limit": 285, "nominal": 300}},
            },
            "risk": {"index": {SYMBOL: {"price": 60000 + i, "healthy": True, "sources": []}}},
        }

    d = write_run(ticks=20, tick_extra=extra)
    s = build_series(load_run(d))
    assert len(s.marks[SYMBOL]) == 20 and len(s.index[SYMBOL]) == 20
    assert [v for _, v in s.rate_used][:3] == [0.0, 10.0, 20.0]
    assert {v for _, v in s.rate_limit} == {2400.0, 1200.0}
    # the summary's end state closes the equity and position series
    assert len(s.equity) == 21 and len(s.positions[SYMBOL]) == 21
    assert s.positions[SYMBOL][-1][1] == 0.0


def test_a_symbol_missing_from_a_tick_is_flat_and_drawdown_is_from_peak(
    write_run: Callable[..., Path],
) -> None:
    d = write_run(ticks=4, summary=False)
    run = load_run(d)
    equities = [100.0, 110.0, 99.0, 120.0]
    for t, eq in zip(run.ticks, equities, strict=True):
        t["equity"] = eq
    run.ticks[2]["positions"] = {}
    s = build_series(run)
    assert [v for _, v in s.positions[SYMBOL]][2] == 0.0
    assert [v for _, v in s.drawdown] == [0.0, 0.0, -11.0, 0.0]


def test_markers_are_grouped_by_action(write_run: Callable[..., Path]) -> None:
    events = [
        event(T0 + 5, "alert", "MONITOR_FILL_RATE"),
        event(T0 + 6, "tighten", "RATE_TIGHTEN"),
        event(T0 + 7, "trip", "KILL_DRAWDOWN"),
        event(T0 + 8, "wait", "RATE_WAIT"),
        {"action": "trip", "code": "KILL_NO_TS"},
    ]
    s = build_series(load_run(write_run(events=events)))
    assert {k: len(v) for k, v in s.markers.items()} == {"alert": 1, "tighten": 1, "trip": 1}
