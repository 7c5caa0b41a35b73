"""Time series of a run, pulled out of its ticks, fills, events and summary.

Ticks carry the runner's own fields (``marks``, ``positions``, ``equity``) and the sections
other concerns add, already normalised by ``data.slim_tick``: ``rate`` (used / limit /
nominal request weight) and ``index`` ({symbol: index price}).
What a run did not record stays empty, and the figure says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perpbot.report.data import Points, RunData
from perpbot.report.extras import num

MARKER_ACTIONS = ("trip", "alert", "tighten", "recover", "ban")
KILL_ACTED = "KILL_SEEN"  # the watchdog saw the switch (a `perpbot kill`, or after a trip)


@dataclass
class RunSeries:
    marks: dict[str, Points] = field(default_factory=dict)
    index: dict[str, Points] = field(default_factory=dict)
    positions: dict[str, Points] = field(default_factory=dict)
    equity: Points = field(default_factory=list)
    rate_used: Points = field(default_factory=list)
    rate_limit: Points = field(default_factory=list)
    rate_nominal: Points = field(default_factory=list)
    exchange_weight: Points = field(default_factory=list)  # from response headers
    buys: dict[str, Points] = field(default_factory=dict)
    sells: dict[str, Points] = field(default_factory=dict)
    markers: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def drawdown(self) -> Points:
        """Equity minus its running peak (0 at a new high, negative below it)."""
        out: Points = []
        peak: float | None = None
        for ts, eq in self.equity:
            peak = eq if peak is None else max(peak, eq)
            out.append((ts, eq - peak))
        return out


def build_series(run: RunData) -> RunSeries:
    s = RunSeries()
    symbols = run.symbols
    for tick in run.ticks:
        ts = num(tick.get("ts"))
        if ts is None:
            continue
        marks = tick.get("marks") if isinstance(tick.get("marks"), dict) else {}
        for sym, price in marks.items():
            p = num(price)
            if p is not None:
                s.marks.setdefault(sym, []).append((ts, p))
        for sym, price in (tick.get("index") or {}).items():  # normalised by slim_tick
            if sym in symbols:
                s.index.setdefault(sym, []).append((ts, price))
        positions = tick.get("positions")
        if isinstance(positions, dict):  # a symbol missing from a tick is flat
            for sym in symbols:
                pos = positions.get(sym)
                amt = num(pos.get("amount")) if isinstance(pos, dict) else num(pos)
                s.positions.setdefault(sym, []).append((ts, amt or 0.0))
        eq = num(tick.get("equity"))
        if eq is not None:
            s.equity.append((ts, eq))
        rate = tick.get("rate") or {}  # normalised by slim_tick
        for key, pts in (
            ("used", s.rate_used),
            ("limit", s.rate_limit),
            ("nominal", s.rate_nominal),
        ):
            if rate.get(key) is not None:
                pts.append((ts, rate[key]))
    s.exchange_weight = list(run.exchange_weight)
    _add_final_state(run, s, symbols)
    for f in run.fills:
        ts, price = num(f.get("ts")), num(f.get("price"))
        if ts is None or price is None:
            continue
        side = s.buys if f.get("side") == "buy" else s.sells if f.get("side") == "sell" else None
        if side is not None:
            side.setdefault(str(f.get("symbol")), []).append((ts, price))
    for ev in run.events:
        if num(ev.get("ts")) is None:
            continue
        if ev.get("action") in MARKER_ACTIONS:
            s.markers.setdefault(str(ev["action"]), []).append(ev)
        elif ev.get("action") == "act" and ev.get("code") == KILL_ACTED:
            s.markers.setdefault("kill", []).append(ev)
    return s


def _add_final_state(run: RunData, s: RunSeries, symbols: list[str]) -> None:
    """The summary's end state (after the final cancel and reconcile) closes the series.

    The last tick predates the stop sequence, so without this a run that flattened on its
    way out would seem to end holding a position.
    """
    summ = run.summary or {}
    ended = num(summ.get("ended_at"))
    if ended is None:
        return
    end_eq = num(summ.get("end_equity"))
    if end_eq is not None and (not s.equity or ended > s.equity[-1][0]):
        s.equity.append((ended, end_eq))
    final = summ.get("final_positions")
    if not isinstance(final, dict):
        return
    for sym in symbols:
        pts = s.positions.setdefault(sym, [])
        pos = final.get(sym)
        amt = num(pos.get("amount")) if isinstance(pos, dict) else None
        if not pts or ended > pts[-1][0]:
            pts.append((ended, amt or 0.0))
