"""The run's picture: one matplotlib figure (Agg, headless) on a shared UTC time axis.

Panels, top to bottom (each titled, so tests and readers can find them):

    Price <symbol>       mark (and index, when the risk layer recorded it), fills by side
    Position             contracts per symbol (signed: long > 0)
    Equity               account equity and its running peak
    Drawdown from peak   equity minus the peak so far
    Rate budget          request weight used against the current and nominal limits,
                         with the limiter's tighten/recover events (without the limiter:
                         the weight the exchange reported, from the signed request log)

Kill-switch trips (and the moment the run's watchdog acted on the switch) and monitor alerts
are vertical lines across every panel. A panel with no
data says so in words instead of silently staying blank.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from perpbot.report.data import Points, RunData
from perpbot.report.series import RunSeries

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TITLE_POSITION = "Position"
TITLE_EQUITY = "Equity"
TITLE_DRAWDOWN = "Drawdown from peak"
TITLE_RATE = "Rate budget"
# vertical markers: action -> (colour, line style, legend label)
MARKER_STYLE = {
    "trip": ("#c0392b", "-", "kill switch tripped"),
    "kill": ("#7b241c", "-.", "kill switch acted"),
    "alert": ("#e67e22", "--", "alert"),
    "tighten": ("#8e44ad", ":", "rate tightened"),
    "recover": ("#27ae60", ":", "rate recovered"),
    "ban": ("#000000", "-.", "IP banned"),
}
EVERY_PANEL = ("trip", "kill", "alert")
RATE_PANEL = ("tighten", "recover", "ban")


def price_title(symbol: str) -> str:
    return f"Price {symbol}"


def _x(points: Points) -> tuple[list[datetime], list[float]]:
    return (
        [datetime.fromtimestamp(t, tz=UTC) for t, _ in points],
        [v for _, v in points],
    )


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777777")


def _markers(ax: Axes, series: RunSeries, actions: tuple[str, ...], legend: bool) -> None:
    for action in actions:
        colour, style, label = MARKER_STYLE[action]
        for i, ev in enumerate(series.markers.get(action, [])):
            shown = legend and i == 0
            ax.axvline(
                datetime.fromtimestamp(float(ev["ts"]), tz=UTC),
                color=colour,
                linestyle=style,
                linewidth=1.2,
                label=f"{label} ({ev.get('code')})" if shown else f"_{action}",
            )


def _price_panel(ax: Axes, series: RunSeries, symbol: str) -> None:
    ax.set_title(price_title(symbol), loc="left", fontsize=10)
    ax.set_ylabel("price (USDT)")
    drawn = False
    if series.marks.get(symbol):
        ax.plot(*_x(series.marks[symbol]), color="#2c3e50", linewidth=1.0, label="mark")
        drawn = True
    if series.index.get(symbol):
        ax.plot(*_x(series.index[symbol]), color="#7f8c8d", linestyle="--", label="index")
        drawn = True
    for pts, marker, colour, label in (
        (series.buys.get(symbol), "^", "#27ae60", "buy fills"),
        (series.sells.get(symbol), "v", "#c0392b", "sell fills"),
    ):
        if pts:
            ax.scatter(*_x(pts), marker=marker, color=colour, s=28, zorder=3, label=label)
            drawn = True
    if not drawn:
        _empty(ax, "no prices recorded")


def _line_panel(
    ax: Axes, title: str, ylabel: str, lines: list[tuple[str, Points, dict[str, Any]]], empty: str
) -> None:
    ax.set_title(title, loc="left", fontsize=10)
    ax.set_ylabel(ylabel)
    drawn = [(label, pts, kw) for label, pts, kw in lines if pts]
    for label, pts, kw in drawn:
        ax.plot(*_x(pts), label=label, **kw)
    if not drawn:
        _empty(ax, empty)


def build_figure(run: RunData, series: RunSeries, heading: str) -> Figure:
    """The report figure. Uses matplotlib's object API only: no pyplot, no global state."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.dates as mdates
    from matplotlib.figure import Figure

    symbols = run.symbols or ["(no symbol)"]
    n = len(symbols) + 4
    fig = Figure(figsize=(12, 2.1 * n + 0.8), dpi=100, layout="constrained")
    axes = fig.subplots(n, 1, sharex=True, squeeze=False)[:, 0]
    fig.suptitle(heading, fontsize=11)
    for ax, sym in zip(axes, symbols, strict=False):
        _price_panel(ax, series, sym)
    pos_ax, eq_ax, dd_ax, rate_ax = axes[len(symbols) :]
    _line_panel(
        pos_ax,
        TITLE_POSITION,
        "contracts",
        [(f"{s}", series.positions.get(s, []), {"drawstyle": "steps-post"}) for s in symbols],
        "no positions recorded",
    )
    pos_ax.axhline(0.0, color="#999999", linewidth=0.6, label="_zero")
    peak: Points = []
    for ts, v in series.equity:
        peak.append((ts, max(v, peak[-1][1]) if peak else v))
    _line_panel(
        eq_ax,
        TITLE_EQUITY,
        "USDT",
        [
            ("equity", series.equity, {"color": "#2980b9"}),
            ("peak", peak, {"color": "#95a5a6", "linestyle": "--", "linewidth": 0.8}),
        ],
        "no equity recorded",
    )
    dd = series.drawdown
    _line_panel(
        dd_ax, TITLE_DRAWDOWN, "USDT", [("drawdown", dd, {"color": "#c0392b"})], "no equity"
    )
    if dd:
        dd_ax.fill_between(*_x(dd), 0.0, color="#c0392b", alpha=0.2)
    _line_panel(
        rate_ax,
        TITLE_RATE,
        "request weight",
        [
            ("weight used", series.rate_used, {"color": "#16a085"}),
            ("limit", series.rate_limit, {"color": "#8e44ad", "drawstyle": "steps-post"}),
            ("nominal limit", series.rate_nominal, {"color": "#bdc3c7", "linestyle": "--"}),
            (
                "weight used (exchange header)",
                series.exchange_weight,
                {"color": "#16a085", "drawstyle": "steps-post", "linewidth": 0.8},
            ),
        ],
        "no rate-budget data (no rate section in the ticks, no signed request log)",
    )
    for i, ax in enumerate(axes):
        _markers(ax, series, EVERY_PANEL, legend=i == 0)
        ax.grid(True, alpha=0.25)
        ax.ticklabel_format(axis="y", useOffset=False, style="plain")
    _markers(rate_ax, series, RATE_PANEL, legend=True)
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", fontsize=8, framealpha=0.8)
    start, end = run.started_at, run.last_seen
    if start is not None and end is not None and end > start:
        pad = (end - start) * 0.01
        axes[-1].set_xlim(
            datetime.fromtimestamp(start - pad, tz=UTC), datetime.fromtimestamp(end + pad, tz=UTC)
        )
    locator = mdates.AutoDateLocator(tz=UTC)
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator, tz=UTC))
    axes[-1].set_xlabel("time (UTC)")
    return fig


def png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def describe(fig: Figure) -> list[dict[str, Any]]:
    """The figure's panels as data (title, y label, labelled lines and their point counts,
    fill markers): what `perpbot report --json` prints and what tests check."""
    out: list[dict[str, Any]] = []
    for ax in fig.axes:
        lines = {
            ln.get_label(): len(ln.get_xdata())  # type: ignore[arg-type]
            for ln in ax.get_lines()
            if not str(ln.get_label()).startswith("_") and not _is_vline(ln)
        }
        markers = {
            str(c.get_label()): len(c.get_offsets())  # type: ignore[attr-defined]
            for c in ax.collections
            if str(c.get_label()).endswith("fills")
        }
        vlines = [str(ln.get_label()) for ln in ax.get_lines() if _is_vline(ln)]
        out.append(
            {
                "title": ax.get_title(loc="left"),
                "ylabel": ax.get_ylabel(),
                "lines": lines,
                "fills": markers,
                "event_markers": len(vlines),
            }
        )
    return out


def _is_vline(line: Any) -> bool:
    x = line.get_xdata()
    return len(x) == 2 and x[0] == x[1] and tuple(line.get_ydata()) == (0, 1)
