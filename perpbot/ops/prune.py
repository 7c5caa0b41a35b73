"""Retention of the runs dir: `perpbot runs prune --keep 90d`.

A run is pruned when it ended (``summary.json``) longer ago than ``keep``; a run without a
summary (crashed, or still running) only when nothing in its folder changed for that long
and no live process publishes its status. Runs kept that ended but are not compressed yet
(from before compression, or a stop that could not compress) are compressed. The signed
request logs (``logs/``) are not touched here: `perpbot log prune` keeps their chain
verifiable.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from perpbot.errors import BadInput
from perpbot.fsutil import read_json
from perpbot.paths import bots_dir, runs_dir
from perpbot.procs import pid_alive
from perpbot.runfiles import JOURNALS, compress_run

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str, option: str = "--keep") -> float:
    m = DURATION_RE.match(text)
    if not m or float(m.group(1)) <= 0:
        raise BadInput(f"{option} {text!r}: expected a duration such as 90d, 12h, 2w or 30m")
    return float(m.group(1)) * UNITS[m.group(2)]


@dataclass(slots=True)
class PruneResult:
    removed: list[str] = field(default_factory=list)
    compressed: list[str] = field(default_factory=list)
    kept: int = 0
    bytes_freed: int = 0


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _last_change(folder: Path) -> float:
    return max((p.stat().st_mtime for p in folder.rglob("*")), default=folder.stat().st_mtime)


def _alive(run_id: str) -> bool:
    """A status file says the bot runs and its process is there."""
    try:
        status = read_json(bots_dir() / f"{run_id}.json")
    except (OSError, ValueError):
        return False
    if not isinstance(status, dict):
        return False
    started = status.get("started_at")
    return pid_alive(status.get("pid"), started_at=started if isinstance(started, float) else None)


def ended_at(folder: Path) -> float | None:
    try:
        summary = read_json(folder / "summary.json")
    except (OSError, ValueError):
        return None
    value = summary.get("ended_at") if isinstance(summary, dict) else None
    return float(value) if isinstance(value, int | float) else None


def prune_runs(keep_s: float, *, dry_run: bool = False, now: float | None = None) -> PruneResult:
    now = time.time() if now is None else now
    result = PruneResult()
    for folder in sorted(p for p in runs_dir().iterdir() if p.is_dir()):
        ended = ended_at(folder)
        if ended is None and _alive(folder.name):
            result.kept += 1
            continue
        age = now - (ended if ended is not None else _last_change(folder))
        if age > keep_s:
            result.bytes_freed += _size(folder)
            result.removed.append(folder.name)
            if not dry_run:
                shutil.rmtree(folder)
            continue
        result.kept += 1
        if ended is not None and any((folder / n).exists() for n in JOURNALS):
            result.compressed.append(folder.name)
            if not dry_run:
                result.bytes_freed += compress_run(folder)
    return result
