"""Read a JSONL journal tolerantly: streamed, a torn last line or corrupt lines skipped and said.

Both the run-folder reader (``data.py``) and the signed-log reader (``signedlog.py``) read
journals this way; it lives here so neither has to import the other.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perpbot.runfiles import open_journal

Points = list[tuple[float, float]]  # (ts, value) series a report draws


def read_journal(
    path: Path,
    notes: list[str],
    torn_files: list[str],
    slim: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> list[dict[str, Any]]:
    """A JSONL journal's records, streamed; a torn last line or corrupt lines are skipped
    and said in ``notes`` (torn files are also listed in ``torn_files``)."""
    records: list[dict[str, Any]] = []
    bad = 0
    last_bad = False  # whether the last non-empty line so far failed to parse
    try:
        with open_journal(path) as fh:  # plain, or gzipped once the run ended
            for line in fh:
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    bad += int(last_bad)
                    last_bad = True
                    continue
                bad += int(last_bad)
                last_bad = False
                if isinstance(rec, dict):
                    records.append(slim(rec) if slim else rec)
    except FileNotFoundError:
        return []
    except EOFError:  # a gzip cut short: what was read stands, the tail is torn
        last_bad = True
    except OSError as exc:
        notes.append(f"{path.name} is unreadable ({exc.strerror or type(exc).__name__})")
        return records
    if last_bad:
        torn_files.append(path.name)
        notes.append(
            f"{path.name}: the last line was cut off mid-write (the run crashed or is still "
            "writing it); it was skipped"
        )
    if bad:
        notes.append(f"{path.name}: {bad} corrupt line(s) were skipped")
    return records
