"""When the signed log cannot write (a full disk): what it holds, and how it says so later.

Once a write fails, the writer records nothing more and the run stops (the logger asks it
to). Until the run is closed the log *holds* what it could not write, in memory: the
requests that still went out (only risk-reducing ones are let through: the stop's listings
and cancels of this run's orders, the dead-man countdown), the decisions and the fills and
order changes the engine learnt. They are written later as one signed ``gap`` record that
says how many requests went out unrecorded, since when, and what the bot remembers of each,
as soon as the disk takes it again (the writer tries every ``checkpoint_interval_s``) or at
close.

For the close, each run keeps a reserve beside its log (``.reserve``, ``RESERVE_BYTES``
allocated at open, removed at close): on a full disk it is freed first, so the gap record
and the close record still fit. If even that fails (another process took the space), the
gap record goes to an emergency file outside the state dir (``emergency_path``) and the run
says where; the log then ends without a close record, and ``perpbot log verify`` says the
run's log was not closed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESERVE_BYTES = 1024 * 1024
MAX_HELD = 1000  # records kept in full; past it they are counted (the gap says how many)
RESERVE_NAME = ".reserve"


@dataclass
class Held:
    """What the log could not write since ``since`` (epoch s), and why."""

    reason: str
    since: float = field(default_factory=time.time)
    records: list[dict[str, Any]] = field(default_factory=list)
    requests: int = 0  # exchange requests that went out unrecorded (all of them)
    others: int = 0  # decisions, fills, order changes held
    dropped: int = 0  # records past MAX_HELD: counted, not kept

    def add(self, body: dict[str, Any]) -> None:
        if body.get("kind") == "exchange":
            self.requests += 1
        else:
            self.others += 1
        if len(self.records) < MAX_HELD:
            self.records.append(body)
        else:
            self.dropped += 1

    def body(self, run: str, key: str) -> dict[str, Any]:
        """The ``gap`` record: signed by the writer, like a checkpoint."""
        return {
            "kind": "gap",
            "run": run,
            "key": key,
            "reason": self.reason,
            "since": round(self.since, 6),
            "ts": round(time.time(), 6),
            "requests": self.requests,
            "other": self.others,
            "dropped": self.dropped,
            "from_memory": True,
            "records": self.records,
        }


class Reserve:
    """``RESERVE_BYTES`` on the log's disk, given back when the log needs them to close."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / RESERVE_NAME
        self.held = False
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError:
            return
        try:
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
            self.held = True
        except (OSError, AttributeError):  # no room, or no fallocate here: no reserve
            with contextlib.suppress(OSError):
                self.path.unlink()
        finally:
            os.close(fd)

    def release(self) -> bool:
        """Free the space; True if there was a reserve to free."""
        was, self.held = self.held, False
        with contextlib.suppress(OSError):
            self.path.unlink()
        return was


def emergency_path(run: str) -> Path:
    """Where a gap record goes when the log's own disk takes nothing (the temp dir)."""
    return Path(tempfile.gettempdir()) / f"perpbot-audit-gap-{run}.jsonl"


def write_emergency(run: str, line: bytes) -> Path | None:
    """Write the signed gap line to ``emergency_path``; None if that fails too."""
    path = emergency_path(run)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            view = memoryview(line + b"\n")
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        return None
    return path
