"""Time series of a run, pulled out of its ticks, fills, events and summary.

Ticks carry the runner's own fields (``marks``, ``positions``, ``equity``) and extras merged
in by other concerns: ``rate`` (the rate limiter: weight used, the current limit and the
nominal one) and ``index`` (the risk layer: an index price per symbol and source health).
Those extras are read by shape, not by one exact schema, so a report of an older or newer run
still draws what it can; what it cannot find it leaves empty, and the figure says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perpbot.report.data import Points, RunData, num

# Keys the rate extra may use for each quantity (first match wins).
RATE_USED = ("used", "weight_used", "used_weight", "weight", "used_1m")
RATE_LIMIT = ("limit", "weight_limit", "current_limit", "effective_limit", "budget")
RATE_NOMINAL = ("nominal", "nominal_limit", "weight_nominal", "exchange_limit")
INDEX_PRICE = ("price", "index", "index_price", "value", "median")

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


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for k in keys:
        if k in d:
            v = num(d[k])
            if v is not None:
                return v
    return None


def rate_figures(rate: Any) -> tuple[float | None, float | None, float | None]:
    """(used, limit, nominal) out of a tick's ``rate`` extra, whatever its nesting.

    Accepts a flat dict, or one level of buckets (``{"weight": {...}, "orders": {...}}``;
    the request-weight bucket is preferred, as it is the one that bans an IP).
    """
    if not isinstance(rate, dict):
        return None, None, None
    used, limit, nominal = (_first(rate, k) for k in (RATE_USED, RATE_LIMIT, RATE_NOMINAL))
    if used is not None:
        return used, limit, nominal
    buckets = [(k, v) for k, v in rate.items() if isinstance(v, dict)]
    buckets.sort(key=lambda kv: 0 if "weight" in kv[0].lower() else 1)
    for _, bucket in buckets:
        used = _first(bucket, RATE_USED)
        if used is not None:
            return used, _first(bucket, RATE_LIMIT), _first(bucket, RATE_NOMINAL)
    return None, None, None


def index_prices(index: Any, symbols: list[str]) -> dict[str, float]:
    """Index price per symbol out of a tick's ``index`` extra.

    Accepts ``{symbol: price}``, ``{symbol: {"price": ..., "sources": ...}}`` and
    ``{"prices": {symbol: ...}}`` (or ``"symbols"``), the shapes a price basket reports.
    """
    if not isinstance(index, dict):
        return {}
    for wrapper in ("prices", "symbols", "by_symbol"):
        if isinstance(index.get(wrapper), dict):
            index = index[wrapper]
            break
    out: dict[str, float] = {}
    for sym in symbols:
        v = index.get(sym)
        price = _first(v, INDEX_PRICE) if isinstance(v, dict) else num(v)
        if price is not None:
            out[sym] = price
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
        for sym, price in index_prices(tick.get("index"), symbols).items():
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
        used, limit, nominal = rate_figures(tick.get("rate"))
        if used is not None:
            s.rate_used.append((ts, used))
        if limit is not None:
            s.rate_limit.append((ts, limit))
        if nominal is not None:
            s.rate_nominal.append((ts, nominal))
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
