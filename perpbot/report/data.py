"""Load one run folder, tolerantly, into what the tables and the figure need.

A report must work for a run that is still going, was killed, or crashed mid-write: every
file may be missing, a JSONL file may end in a torn line, and the extras that concerns add to
ticks (``rate``, ``risk.index``) may be absent or shaped differently across versions. Nothing
here raises on such data; each gap becomes a note the report shows the trader.

Journals are streamed line by line and each tick is cut down to what a report draws as it is
read (a day of 1 s ticks with every concern's extras is hundreds of MB as Python objects).
That is why this reads JSONL itself (``jsonl.read_journal``) instead of
``perpbot.engine.journal.read_jsonl``, which loads a whole file and raises on a corrupt line
before the last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbot.fsutil import read_json
from perpbot.report.extras import index_prices, index_section, num, rate_figures
from perpbot.report.jsonl import Points, read_journal
from perpbot.report.signedlog import decisions, header_weights, read_signed_log
from perpbot.runfiles import journal_exists

JOURNALS = ("fills.jsonl", "ticks.jsonl", "events.jsonl")


@dataclass
class RunData:
    """One run folder as read from disk, plus what could not be read."""

    run_id: str
    dir: Path
    meta: dict[str, Any]
    summary: dict[str, Any] | None
    fills: list[dict[str, Any]]
    ticks: list[dict[str, Any]]
    events: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    torn: list[str] = field(default_factory=list)
    # request weight the exchange reported (from the signed log; only when ticks lack "rate")
    exchange_weight: Points = field(default_factory=list)

    @property
    def symbols(self) -> list[str]:
        """The run's symbols: configured ones first, then any seen in the journals."""
        seen: list[str] = [str(s) for s in (self.meta.get("symbols") or [])]
        if self.summary:
            seen += [str(s) for s in self.summary.get("symbols") or []]
        for t in self.ticks:
            seen += list(_dict(t.get("marks"))) + list(_dict(t.get("positions")))
        seen += [str(f["symbol"]) for f in self.fills if f.get("symbol")]
        return list(dict.fromkeys(seen))

    @property
    def started_at(self) -> float | None:
        for src in (self.meta, self.summary or {}):
            ts = num(src.get("started_at"))
            if ts is not None:
                return ts
        first = [num(r.get("ts")) for r in (*self.ticks[:1], *self.events[:1])]
        return min((t for t in first if t is not None), default=None)

    @property
    def last_seen(self) -> float | None:
        """The latest timestamp in the folder: when the run was last known to be alive."""
        stamps = [num((self.summary or {}).get("ended_at"))]
        stamps += [num(r.get("ts")) for r in (*self.ticks[-1:], *self.events[-1:])]
        stamps += [num(f.get("ts")) for f in self.fills[-1:]]
        return max((t for t in stamps if t is not None), default=self.started_at)


def _dict(x: Any) -> dict[str, Any]:
    return x if isinstance(x, dict) else {}


def read_json_tolerant(path: Path, notes: list[str]) -> dict[str, Any] | None:
    """A JSON object file, or None (missing: silently; unreadable: with a note)."""
    if not path.exists():
        return None
    try:
        obj = read_json(path)
    except (OSError, ValueError) as exc:
        notes.append(f"{path.name} is unreadable ({type(exc).__name__}); it was ignored")
        return None
    if not isinstance(obj, dict):
        notes.append(f"{path.name} is not a JSON object; it was ignored")
        return None
    return obj


def slim_tick(t: dict[str, Any]) -> dict[str, Any]:
    """What a report uses of a tick, normalised: rate as (used, limit, nominal) keys and
    index as {symbol: price}; everything else a concern adds is dropped."""
    out: dict[str, Any] = {k: t[k] for k in ("ts", "marks", "equity", "orders") if k in t}
    positions = t.get("positions")
    if isinstance(positions, dict):
        out["positions"] = {
            sym: {"amount": p.get("amount"), "upnl": p.get("upnl")} if isinstance(p, dict) else p
            for sym, p in positions.items()
        }
    used, limit, nominal = rate_figures(t.get("rate"))
    if used is not None:
        out["rate"] = {"used": used, "limit": limit, "nominal": nominal}
    prices = index_prices(index_section(t))
    if prices:
        out["index"] = prices
    return out


def slim_event(e: dict[str, Any]) -> dict[str, Any]:
    return {k: e.get(k) for k in ("ts", "layer", "action", "code", "sentence")}


SLIM: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "ticks.jsonl": slim_tick,
    "events.jsonl": slim_event,
}


def load_run(
    run_dir: Path, journals: tuple[str, ...] = JOURNALS, *, signed_log: bool = True
) -> RunData:
    """Read a run folder; never raises on missing or damaged files.

    ``journals`` limits which JSONL files are read (the run listing skips the big ones);
    ``signed_log`` lets the run's signed request log fill what the folder lacks.
    """
    notes: list[str] = []
    torn: list[str] = []
    meta = read_json_tolerant(run_dir / "meta.json", notes)
    summary = read_json_tolerant(run_dir / "summary.json", notes)
    if meta is None:
        notes.append("meta.json is missing: the run's start details are unknown")
    read = {name: read_journal(run_dir / name, notes, torn, SLIM.get(name)) for name in journals}
    run = RunData(
        run_id=str((meta or {}).get("run_id") or run_dir.name),
        dir=run_dir,
        meta=meta or {},
        summary=summary,
        fills=sorted(read.get("fills.jsonl", []), key=lambda f: num(f.get("ts")) or 0.0),
        ticks=read.get("ticks.jsonl", []),
        events=read.get("events.jsonl", []),
        notes=notes,
        torn=torn,
    )
    if signed_log:
        _fill_from_signed_log(run, journals)
    return run


def _fill_from_signed_log(run: RunData, journals: tuple[str, ...]) -> None:
    want_events = "events.jsonl" in journals and not journal_exists(run.dir / "events.jsonl")
    want_weight = "ticks.jsonl" in journals and not any(
        isinstance(t.get("rate"), dict) for t in run.ticks
    )
    if not (want_events or want_weight):
        return
    records = read_signed_log(run.run_id, run.notes)
    if want_events and records:
        run.events = decisions(records)
        run.notes.append("events.jsonl is missing: events were read from the signed request log")
    if want_weight:
        run.exchange_weight = header_weights(records)
