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

import functools
import io
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from perpbot.errors import RuntimeFailure
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
MAX_POINTS = 3000  # per line: far more than the figure has pixels across
RATE_PANEL = ("tighten", "recover", "ban")


def price_title(symbol: str) -> str:
    return f"Price {symbol}"


def decimate(points: Points, max_points: int = MAX_POINTS) -> Points:
    """At most ``max_points`` points: per bucket of consecutive points, the lowest and the
    highest (in time order), so spikes and drawdown troughs survive; first and last kept."""
    n = len(points)
    if n <= max_points:
        return points
    buckets = max(1, (max_points - 2) // 2)
    out: Points = [points[0]]
    for b in range(buckets):
        chunk = points[1 + b * (n - 2) // buckets : 1 + (b + 1) * (n - 2) // buckets]
        if not chunk:
            continue
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out.extend(sorted({lo, hi}))
    out.append(points[-1])
    return out


@functools.cache
def _epoch_days() -> float:
    """matplotlib's date number of 1970-01-01 UTC (0.0 unless rcParams moved its epoch)."""
    # lazy: matplotlib is the optional `perpbot[report]` extra (~0.5 s); only figures need it
    import matplotlib.dates as mdates

    return float(mdates.date2num(datetime(1970, 1, 1, tzinfo=UTC)))


def _days(ts: float) -> float:
    """Epoch seconds as a matplotlib date number, without building datetimes per point."""
    return _epoch_days() + ts / 86400.0


def _x(points: Points, limit: bool = True) -> tuple[list[float], list[float]]:
    pts = decimate(points) if limit else points
    return [_days(t) for t, _ in pts], [v for _, v in pts]


def _empty(ax: Axes, text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", color="#777777")


def _markers(ax: Axes, series: RunSeries, actions: tuple[str, ...], legend: bool) -> None:
    """One vertical-line collection per kind of event (thousands of events stay cheap)."""
    for action in actions:
        events = series.markers.get(action, [])
        if not events:
            continue
        colour, style, label = MARKER_STYLE[action]
        codes = sorted({str(e.get("code")) for e in events})
        shown = f"{label} ({', '.join(codes[:3])}{', ...' if len(codes) > 3 else ''})"
        ax.vlines(
            [_days(float(e["ts"])) for e in events],
            0.0,
            1.0,
            transform=ax.get_xaxis_transform(),
            colors=colour,
            linestyles=style,
            linewidth=1.2,
            label=shown if legend else f"_{action}",
            gid=f"event:{action}",
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
            ax.scatter(
                *_x(pts, limit=False), marker=marker, color=colour, s=28, zorder=3, label=label
            )
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
    try:
        # lazy: matplotlib is the optional `perpbot[report]` extra (~0.5 s); only figures need it
        import matplotlib
    except ImportError:
        hint = "the report figure needs matplotlib: pip install 'perpbot[report]'"
        raise RuntimeFailure(hint) from None

    matplotlib.use("Agg", force=False)
    # lazy: matplotlib is the optional `perpbot[report]` extra (~0.5 s); only figures need it
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
        dd_ax,
        TITLE_DRAWDOWN,
        "USDT",
        [("drawdown", dd, {"color": "#c0392b"})],
        "no equity recorded",
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
        axes[-1].set_xlim(_days(start - pad), _days(end + pad))
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
    """The figure's panels as data: title, y label, labelled lines and their point counts
    (after decimation), fill markers by side and the number of vertical event markers. This
    is what `perpbot report --json` prints and what tests check."""
    out: list[dict[str, Any]] = []
    for ax in fig.axes:
        lines = {
            str(ln.get_label()): len(ln.get_xdata())  # type: ignore[arg-type]
            for ln in ax.get_lines()
            if not str(ln.get_label()).startswith("_")
        }
        fills = {
            str(c.get_label()): len(c.get_offsets())  # type: ignore[attr-defined]
            for c in ax.collections
            if str(c.get_label()).endswith("fills")
        }
        events = sum(
            len(c.get_segments())  # type: ignore[attr-defined]
            for c in ax.collections
            if str(c.get_gid() or "").startswith("event:")
        )
        out.append(
            {
                "title": ax.get_title(loc="left"),
                "ylabel": ax.get_ylabel(),
                "lines": lines,
                "fills": fills,
                "event_markers": events,
            }
        )
    return out
