"""The figure: its panels, their labels and line counts, event markers (never pixels)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from perpbot.report.build import build_report
from perpbot.report.figure import decimate, describe
from tests.unit.report.report_synth import SYMBOL, T0, event

ETH = "ETH/USDT:USDT"


def _extra(i: int) -> dict[str, object]:
    return {
        "rate": {"used": 10 * i, "limit": 2400, "nominal": 2400},
        "index": {SYMBOL: {"price": 60000.0 + i}},
    }


def test_panels_lines_and_markers(write_run: Callable[..., Path]) -> None:
    events = [
        event(T0 + 10, "alert", "MONITOR_FILL_RATE"),
        event(T0 + 12, "tighten", "RATE_TIGHTEN"),
        event(T0 + 14, "recover", "RATE_RECOVER"),
        event(T0 + 20, "trip", "KILL_DRAWDOWN"),
        event(T0 + 20.1, "act", "KILL_SEEN"),
        event(T0 + 21, "act", "KILL_DONE"),
    ]
    d = write_run(ticks=30, n_fills=8, events=events, tick_extra=_extra, end_reason="kill switch")
    rep = build_report(d)
    axes = rep.figure.axes
    titles = [ax.get_title(loc="left") for ax in axes]
    assert titles == [
        f"Price {SYMBOL}",
        "Position",
        "Equity",
        "Drawdown from peak",
        "Rate budget",
    ]
    assert all(ax.get_shared_x_axes().joined(axes[0], ax) for ax in axes)
    panels = {p["title"]: p for p in describe(rep.figure)}
    price = panels[f"Price {SYMBOL}"]
    assert price["lines"] == {"mark": 30, "index": 30}
    buys = sum(1 for f in rep.run.fills if f["side"] == "buy")
    assert price["fills"] == {"buy fills": buys, "sell fills": 8 - buys}
    assert panels["Position"]["lines"] == {SYMBOL: 31}  # + the summary's end state
    assert panels["Equity"]["lines"] == {"equity": 31, "peak": 31}
    assert panels["Drawdown from peak"]["lines"] == {"drawdown": 31}
    assert panels["Rate budget"]["lines"] == {
        "weight used": 30,
        "limit": 30,
        "nominal limit": 30,
    }
    # trip, kill acted and alert on every panel; tighten + recover on the rate panel only
    assert [p["event_markers"] for p in describe(rep.figure)] == [3, 3, 3, 3, 5]
    legend = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert "kill switch tripped (KILL_DRAWDOWN)" in legend
    assert "kill switch acted (KILL_SEEN)" in legend and "alert (MONITOR_FILL_RATE)" in legend
    assert axes[-1].get_xlabel() == "time (UTC)"
    assert rep.write_png(d / "r.png")[:8] == b"\x89PNG\r\n\x1a\n"


def test_one_price_panel_per_symbol_and_empty_panels_say_so(
    write_run: Callable[..., Path],
) -> None:
    d = write_run(ticks=6, n_fills=1, symbols=(SYMBOL, ETH))
    rep = build_report(d)
    titles = [ax.get_title(loc="left") for ax in rep.figure.axes]
    assert titles[:2] == [f"Price {SYMBOL}", f"Price {ETH}"] and len(titles) == 6
    rate = rep.figure.axes[-1]
    assert all(str(ln.get_label()).startswith("_") for ln in rate.get_lines())
    assert [t.get_text() for t in rate.texts] == [
        "no rate-budget data (no rate section in the ticks, no signed request log)"
    ]
    eth_price = rep.figure.axes[1]
    assert describe(rep.figure)[1]["fills"] == {} and len(eth_price.texts) == 0


def test_a_run_with_nothing_but_meta_still_draws(write_run: Callable[..., Path]) -> None:
    d = write_run(ticks=0, n_fills=0, summary=False)
    rep = build_report(d)
    texts = [t.get_text() for ax in rep.figure.axes for t in ax.texts]
    assert "no prices recorded" in texts and "no equity recorded" in texts
    assert rep.write_png(d / "r.png")[:4] == b"\x89PNG"


def test_decimation_keeps_extremes_and_ends() -> None:
    pts = [(float(i), float(i % 100)) for i in range(100_000)]
    pts[54_321] = (54_321.0, -500.0)  # a one-tick crash must survive
    pts[77_777] = (77_777.0, 900.0)
    out = decimate(pts, 1000)
    assert len(out) <= 1000 and out[0] == pts[0] and out[-1] == pts[-1]
    assert (54_321.0, -500.0) in out and (77_777.0, 900.0) in out
    assert [t for t, _ in out] == sorted(t for t, _ in out)
    short = pts[:50]
    assert decimate(short, 1000) is short
