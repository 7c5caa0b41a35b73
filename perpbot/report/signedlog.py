"""What a report can take from a run's signed request log (``logs/<run_id>/audit-*.jsonl``).

The run folder is preferred. The signed log fills two gaps: guard decisions when
``events.jsonl`` is missing, and the request weight the exchange itself reported
(``X-MBX-USED-WEIGHT-1M`` on every response) when the ticks carry no ``rate`` section (a run
without the client-side rate limiter). Only reading happens here: verifying the chain is
``perpbot log verify``'s job, so a damaged log is read tolerantly like any journal.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perpbot.audit.segments import segment_files
from perpbot.paths import state_dir
from perpbot.report.extras import num
from perpbot.report.jsonl import Points, read_journal

WEIGHT_HEADER = "x-mbx-used-weight-"


def log_files(run_id: str) -> list[Path]:
    """The run's log files in order (closed ones compressed: ``audit-NNNN.jsonl.gz``)."""
    return segment_files(state_dir() / "logs" / run_id)


def _slim(r: dict[str, Any]) -> dict[str, Any]:
    keys = ("kind", "ts", "rate", "layer", "action", "code", "sentence")
    return {k: r[k] for k in keys if k in r}


def read_signed_log(run_id: str, notes: list[str]) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for path in log_files(run_id):
        records += read_journal(path, notes, [], _slim)
    return records


def decisions(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Decision records, shaped like events.jsonl lines."""
    keys = ("layer", "action", "code", "sentence", "ts")
    return [{k: r.get(k) for k in keys} for r in records if r.get("kind") == "decision"]


def _header_weight(rate: Any) -> float | None:
    if not isinstance(rate, dict):
        return None
    found = {str(k).lower(): v for k, v in rate.items()}
    for key in (WEIGHT_HEADER + "1m", *sorted(k for k in found if k.startswith(WEIGHT_HEADER))):
        if key in found and num(found[key]) is not None:
            return num(found[key])
    return None


def header_weights(records: list[dict[str, Any]]) -> Points:
    """(ts, weight used) as the exchange reported it on each response."""
    out: Points = []
    for r in records:
        if r.get("kind") != "exchange":
            continue
        ts, used = num(r.get("ts")), _header_weight(r.get("rate"))
        if ts is not None and used is not None:
            out.append((ts, used))
    return sorted(out)
