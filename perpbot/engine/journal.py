"""A run's folder under the state dir: what `perpbot runs` and `perpbot report` read.

    runs/<run_id>/meta.json      what was started, by whom, when (written at start)
    runs/<run_id>/fills.jsonl    one line per fill of this run's orders
    runs/<run_id>/ticks.jsonl    one line per reconcile: prices, positions, equity, extras
    runs/<run_id>/events.jsonl   guard decisions (reason code + sentence)
    runs/<run_id>/summary.json   the final summary (written at stop, atomically)

JSONL lines are appended and flushed one at a time, so a crash leaves at most a torn last
line, which the reader (perpbot.report.jsonl.read_journal) tolerates and reports.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import IO, Any

from perpbot.fsutil import atomic_write_json
from perpbot.paths import run_dir


class RunJournal:
    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self.dir: Path = run_dir(run_id)
        self._files: dict[str, IO[str]] = {}

    def _append(self, name: str, record: dict[str, Any]) -> None:
        fh = self._files.get(name)
        if fh is None:
            fh = self._files[name] = open(self.dir / name, "a", encoding="utf-8")  # noqa: SIM115
        fh.write(json.dumps(record, sort_keys=True, default=str) + "\n")
        fh.flush()

    def meta(self, meta: dict[str, Any]) -> None:
        atomic_write_json(self.dir / "meta.json", meta)

    def fill(self, record: dict[str, Any]) -> None:
        self._append("fills.jsonl", record)

    def tick(self, record: dict[str, Any]) -> None:
        self._append("ticks.jsonl", record)

    def event(self, record: dict[str, Any]) -> None:
        self._append("events.jsonl", record)

    def strategy_error(self, record: dict[str, Any]) -> None:
        """A strategy error: where, what, and the strategy's own frames (``traceback``)."""
        self._append("strategy_errors.jsonl", record)

    def summary(self, summary: dict[str, Any]) -> None:
        atomic_write_json(self.dir / "summary.json", summary)

    def close(self) -> list[str]:
        """Close every file; what could not be written (a full disk) is returned, not raised:
        the run's own outcome must not be masked at its very end."""
        lost: list[str] = []
        for name, fh in self._files.items():
            try:
                fh.close()
            except OSError as exc:
                lost.append(f"{self.dir / name}: {exc.strerror or exc}")
        self._files.clear()
        return lost
