"""Retention: deleting old runs' logs while the rest of the chain stays verifiable.

Pruning happens in a run's writer as it opens its log (``[audit] retention_days``, and
``perpbot log prune`` which opens a short run of its own for this): the runs deleted are
listed in that run's signed open record (``pruned``: each deleted run's last record, seq
and hash), a signed checkpoint of what was pruned. ``perpbot log verify`` then accepts a
run that continues a pruned run, checks the link against that record, and says so
("pruned before X, anchored by ..."). A run still running, and the run the new one
continues, are never pruned. Pruning also compresses the closed files of the runs kept.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

from perpbot.audit.canonical import line_hash
from perpbot.audit.recovery import alive
from perpbot.audit.segments import last_modified, list_segments, read_file, segment_files
from perpbot.errors import BadInput, RuntimeFailure

MAX_PRUNED = 1000
_KEEP_AGE = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_keep(text: str) -> tuple[float | None, int | None]:
    """``90d``/``12h``/... -> (age in seconds, None); ``30`` -> (None, 30 newest runs)."""
    value = text.strip().lower()
    m = _KEEP_AGE.match(value)
    if m and float(m.group(1)) > 0:
        return float(m.group(1)) * _UNITS[m.group(2)], None
    if value.isdigit() and 0 < int(value) <= 1_000_000:
        return None, int(value)
    raise BadInput(
        f"--keep: got {text!r}, expected an age such as 90d or 12h, or a number of newest "
        "runs to keep such as 30"
    )


def _last_record(segment: Path) -> dict[str, Any] | None:
    for path in reversed(segment_files(segment)):
        fl = read_file(path)
        if fl.lines:
            line = fl.lines[-1]
            try:
                seq = json.loads(line).get("seq")
            except ValueError:
                seq = None
            return {"run": segment.name, "seq": seq, "hash": line_hash(line)}
    return None


def _carried(segment: Path) -> list[dict[str, Any]]:
    """The prune entries a segment's open record carries (kept when it is pruned in turn)."""
    files = segment_files(segment)
    if not files:
        return []
    lines = read_file(files[0]).lines
    try:
        rec = json.loads(lines[0]) if lines else {}
    except ValueError:
        return []
    pruned = rec.get("pruned") if isinstance(rec, dict) else None
    return [p for p in pruned if isinstance(p, dict)] if isinstance(pruned, list) else []


def prune(
    root: Path, retention_days: float, keep: set[str], keep_runs: int | None = None
) -> list[dict[str, Any]]:
    """Delete segments untouched for ``retention_days`` (0: no age limit) and, with
    ``keep_runs``, all but the newest ``keep_runs`` (besides ``keep``); never a run still
    running. Returns what was deleted, for the record."""
    if retention_days <= 0 and keep_runs is None:
        return []
    cutoff = time.time() - retention_days * 86400.0 if retention_days > 0 else None
    segments = sorted(list_segments(root), key=last_modified)
    newest = {s.name for s in segments[-keep_runs:]} if keep_runs else set()
    entries: list[dict[str, Any]] = []
    for segment in segments:
        if segment.name in keep or segment.name in newest:
            continue
        old = cutoff is not None and last_modified(segment) < cutoff
        if not (old or keep_runs is not None) or running(segment):
            continue
        last = _last_record(segment)
        entries.extend(_carried(segment))
        if last is not None:
            entries.append(last)
        with contextlib.suppress(OSError):
            shutil.rmtree(segment)
    return entries[-MAX_PRUNED:]


def running(segment: Path) -> bool:
    """Whether the run that writes this segment is still running: its log is not closed
    and its pid is alive."""
    files = segment_files(segment)
    try:
        if not files or _closed(files[-1]):
            return False
        return alive(files[0])
    except RuntimeFailure:
        return False


def _closed(last_file: Path) -> bool:
    lines = read_file(last_file).lines
    return bool(lines) and b'"kind":"close"' in lines[-1]
