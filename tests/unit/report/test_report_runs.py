"""Listing runs, how each ended, and finding one by id, prefix or "last"."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from perpbot.errors import BadInput
from perpbot.procs import pid_alive
from perpbot.report.data import load_run
from perpbot.report.runs import how_it_ended, list_runs, resolve_run
from tests.unit.report.report_synth import T0, event


@pytest.mark.parametrize(
    ("reason", "status", "label"),
    [
        ("duration", "duration", "duration reached"),
        ("completed", "completed", "strategy finished"),
        ("interrupted", "interrupted", "Ctrl-C"),
        ("terminated", "terminated", "SIGTERM"),
        ("something new", "something new", "something new"),
    ],
)
def test_endings(write_run: Callable[..., Path], reason: str, status: str, label: str) -> None:
    assert how_it_ended(load_run(write_run(end_reason=reason))) == (status, label)


def test_kill_switch_reason_comes_from_the_trip_event(write_run: Callable[..., Path]) -> None:
    trip = event(T0 + 9, "trip", "KILL_DRAWDOWN", "drawdown 6.1% from peak exceeds 5%")
    d = write_run(end_reason="kill switch", events=[trip], error="stopped by the kill switch")
    assert how_it_ended(load_run(d)) == (
        "kill",
        "kill switch: KILL_DRAWDOWN: drawdown 6.1% from peak exceeds 5%",
    )
    (d / "events.jsonl").unlink()
    assert how_it_ended(load_run(d))[1] == "kill switch: stopped by the kill switch"


def test_kill_switch_pulled_by_hand(write_run: Callable[..., Path]) -> None:
    """`perpbot kill --reason ...`: no trip event; the reason is in the summary's kill entry."""
    d = write_run(end_reason="kill switch: desk closing")
    assert how_it_ended(load_run(d)) == ("kill", "kill switch: desk closing")
    summary = load_run(d).summary or {}
    summary["kill"] = {"reason": "latency spike", "code": None, "level": "cancel"}
    (d / "summary.json").write_text(__import__("json").dumps(summary))
    assert how_it_ended(load_run(d)) == ("kill", "kill switch: latency spike")


def test_error_ending_names_the_error(write_run: Callable[..., Path]) -> None:
    d = write_run(end_reason="error", error="strategy failed 5 times in a row")
    assert how_it_ended(load_run(d)) == ("error", "error: strategy failed 5 times in a row")


def test_running_crashed_and_reused_pid(write_run: Callable[..., Path]) -> None:
    now = time.time()
    running = write_run("r-running", summary=False, pid=os.getpid(), started_at=now)
    assert how_it_ended(load_run(running))[0] == "running"
    crashed = write_run("r-crashed", summary=False, started_at=now)
    assert how_it_ended(load_run(crashed))[0] == "crashed"
    # our pid, but this process started long after the run: the pid was reused
    if Path("/proc/self/stat").exists():
        assert not pid_alive(os.getpid(), None, T0)
    elsewhere = write_run("r-elsewhere", summary=False, started_at=now)
    meta = load_run(elsewhere).meta | {"host": "another-host"}
    (elsewhere / "meta.json").write_text(__import__("json").dumps(meta))
    assert how_it_ended(load_run(elsewhere)) == ("unknown", "no summary (ran on host another-host)")
    assert not pid_alive("12", None, None) and not pid_alive(-1, None, None)


def test_list_runs_oldest_first_with_estimates(write_run: Callable[..., Path]) -> None:
    write_run("b-second", started_at=T0 + 100)
    write_run("a-first", started_at=T0)
    write_run("c-crashed", summary=False, started_at=T0 + 200)
    runs = list_runs()
    assert [r.run_id for r in runs] == ["a-first", "b-second", "c-crashed"]
    first, crashed = runs[0], runs[2]
    assert first.pnl_final and first.duration_s == 42.0 and first.status == "duration"
    assert not crashed.pnl_final and crashed.status == "crashed"
    run = load_run(Path(crashed.dir))
    expected = sum(f["realized_pnl"] - f["fee"] for f in run.fills) + 0.5
    assert crashed.pnl == pytest.approx(expected)
    assert crashed.duration_s == pytest.approx(run.last_seen - T0 - 200)


def test_resolve_run(write_run: Callable[..., Path], state_home: Path) -> None:
    with pytest.raises(BadInput, match="no runs yet"):
        resolve_run("last")
    write_run("20250101-000000-grid-aaaaaa", started_at=T0)
    write_run("20250101-000000-grid-bbbbbb", started_at=T0 + 10)
    write_run("20250102-000000-grid-cccccc", started_at=T0 + 5)
    (state_home / "runs" / "not-a-run").mkdir()
    assert resolve_run("last").name == "20250101-000000-grid-bbbbbb"  # latest start
    assert resolve_run("20250102").name == "20250102-000000-grid-cccccc"
    assert resolve_run("20250101-000000-grid-a").name.endswith("aaaaaa")
    with pytest.raises(BadInput, match="ambiguous: it matches 2 runs") as exc:
        resolve_run("20250101")
    assert exc.value.exit_code == 2
    for ref in ("nope", "", "not-a-run"):
        with pytest.raises(BadInput, match="no run matches"):
            resolve_run(ref)
