"""Reading records back for `perpbot log show` and `perpbot log tail` (not verifying them).

Finding a run's folder, parsing ``--since``, iterating records across rotated files, and
following a running bot's log as it grows (and rotates) until its close record.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from perpbot.audit.canonical import decode
from perpbot.audit.segments import (
    check_run_id,
    is_compressed,
    latest_segment,
    read_bytes,
    segment_files,
)
from perpbot.errors import BadInput

_RELATIVE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_since(text: str, now: float | None = None) -> float:
    """``30s``/``10m``/``2h``/``1d`` ago, an ISO date-time (local time unless it says), or
    epoch seconds."""
    value = text.strip()
    now = time.time() if now is None else now
    m = _RELATIVE.match(value)
    if m:
        return now - float(m.group(1)) * _UNITS[m.group(2)]
    try:
        return float(value)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise BadInput(
            f"--since: got {text!r}, expected a duration ago (30s, 10m, 2h, 1d), an ISO time "
            "(2026-01-31T14:00) or epoch seconds"
        ) from None


def find_segment(root: Path, run: str | None) -> Path:
    """The folder of ``run``, or of the most recently written run."""
    if run is not None:
        path = root / check_run_id(run)
        if not segment_files(path):
            raise BadInput(f"--run: got {run!r}, expected a run with an audit log under {root}")
        return path
    latest = latest_segment(root)
    if latest is None:
        raise BadInput(f"no audit logs under {root} yet (they appear once a bot has run)")
    return latest


def _records(lines: list[bytes]) -> Iterator[dict[str, Any]]:
    for line in lines:
        try:
            yield decode(line)
        except ValueError:
            continue  # a torn or damaged line: `perpbot log verify` says which


def iter_records(segment: Path) -> Iterator[dict[str, Any]]:
    for path in segment_files(segment):
        data = read_bytes(path)  # a closed file may be compressed
        complete = data[: data.rfind(b"\n") + 1] if b"\n" in data else b""
        yield from _records(complete.split(b"\n")[:-1])


def matches(rec: dict[str, Any], since: float | None, decisions: bool) -> bool:
    if decisions and rec.get("kind") != "decision":
        return False
    ts = rec.get("ts")
    return not (since is not None and isinstance(ts, int | float) and ts < since)


def follow(
    segment: Path,
    *,
    poll_s: float = 0.2,
    skip: int = 0,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """Records of a segment as they are written, from record ``skip``; ends at the close."""
    number, offset, buffer, seen = 0, 0, b"", 0
    moved_on = False  # the writer has opened the next file: drain this one, then switch
    while True:
        files = segment_files(segment)
        chunk = b""
        if number < len(files) and is_compressed(files[number]):
            chunk = read_bytes(files[number])[offset:]  # compressed once it was closed
        elif number < len(files):
            try:
                with open(files[number], "rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except FileNotFoundError:  # swapped for its compressed copy since the listing
                continue
        offset += len(chunk)
        *lines, buffer = (buffer + chunk).split(b"\n")
        for rec in _records(lines):
            seen += 1
            if seen > skip:
                yield rec
            if rec.get("kind") == "close":
                return
        if chunk:
            continue
        if moved_on:
            number, offset, buffer, moved_on = number + 1, 0, b"", False
            continue
        if number + 1 < len(files):
            moved_on = True  # one more read of this file catches its last lines
            continue
        sleep(poll_s)
