"""The terminal rendering: the run listing and a report's tables and notes (rich, plain)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from perpbot.report.data import load_run
from perpbot.report.runs import list_runs, run_info
from perpbot.report.series import build_series
from perpbot.report.tables import compute, sections
from perpbot.report.terminal import print_report, print_runs
from tests.unit.report.report_synth import T0


def test_listing_marks_estimates(
    write_run: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    write_run("r-done", started_at=T0)
    write_run("r-crashed", summary=False, started_at=T0 + 60)
    print_runs(list_runs())
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["run", "strategy", "started"]
    assert "r-done" in lines[1] and "duration reached" in lines[1]
    assert "r-crashed" in lines[2] and " ~ " in lines[2] and "crashed: no summary" in lines[2]
    assert lines[-1].startswith("~ estimated from the journals")
    print_runs([])
    assert "no runs yet" in capsys.readouterr().out


def test_report_tables_and_notes(
    write_run: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    d = write_run(summary=False)
    with open(d / "ticks.jsonl", "a") as fh:
        fh.write('{"ts": [1, 2')
    run = load_run(d)
    numbers = compute(run, build_series(run))
    print_report("heading [not markup]", sections(run_info(run), numbers), run.notes, ["x.png"])
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "heading [not markup]"
    for title in ("PnL (USDT)", "Fills", "Orders", "Equity"):
        assert title in out
    assert "note: ticks.jsonl: the last line was cut off mid-write" in out
    assert "unknown until stop" in out and "wrote x.png" in out
