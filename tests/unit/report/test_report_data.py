"""Loading a run folder tolerantly: torn tails, corrupt lines, missing files."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from perpbot.report.data import load_run
from perpbot.report.extras import num
from perpbot.report.runs import how_it_ended
from perpbot.report.series import build_series
from perpbot.report.tables import compute


def test_a_complete_run_loads_everything(write_run: Callable[..., Path]) -> None:
    d = write_run(ticks=30, n_fills=6)
    run = load_run(d)
    assert run.run_id == d.name
    assert len(run.ticks) == 30 and len(run.fills) == 6
    assert run.summary is not None and run.notes == [] and run.torn == []
    assert run.symbols == ["BTC/USDT:USDT"]


def test_torn_last_line_is_skipped_and_said(write_run: Callable[..., Path]) -> None:
    d = write_run(ticks=12, summary=False)
    with open(d / "ticks.jsonl", "a") as fh:
        fh.write('{"ts": 1750000099.0, "marks": {"BTC/US')  # the crash hit mid-write
    with open(d / "fills.jsonl", "a") as fh:
        fh.write('{"ts": 17')
    run = load_run(d)
    assert len(run.ticks) == 12
    assert sorted(run.torn) == ["fills.jsonl", "ticks.jsonl"]
    said = [n for n in run.notes if "cut off mid-write" in n]
    assert len(said) == 2 and any(n.startswith("ticks.jsonl") for n in said)


def test_corrupt_middle_line_is_skipped_and_counted(write_run: Callable[..., Path]) -> None:
    d = write_run(ticks=10)
    lines = (d / "ticks.jsonl").read_text().splitlines()
    lines[4] = "this is not json"
    lines.insert(6, "[1, 2, 3]")  # valid JSON but not a record
    (d / "ticks.jsonl").write_text("\n".join(lines) + "\n")
    run = load_run(d)
    assert len(run.ticks) == 9
    assert run.torn == []
    assert any("1 corrupt line(s)" in n for n in run.notes)


def test_missing_and_unreadable_files(write_run: Callable[..., Path]) -> None:
    d = write_run(ticks=5)
    (d / "meta.json").write_text("{not json")
    (d / "fills.jsonl").unlink()
    (d / "events.jsonl").unlink(missing_ok=True)
    run = load_run(d)
    assert run.run_id == d.name and run.meta == {}
    assert run.fills == [] and run.events == []
    assert any("meta.json is unreadable" in n for n in run.notes)
    # the rest of the report still works from what is left
    numbers = compute(run, build_series(run))
    assert numbers["fills"]["count"] == 0
    assert how_it_ended(run)[0] == "duration"


def test_only_meta_written(write_run: Callable[..., Path]) -> None:
    """A run that died while connecting: meta.json and nothing else."""
    d = write_run(ticks=0, n_fills=0, summary=False)
    for name in ("ticks.jsonl", "fills.jsonl", "events.jsonl"):
        (d / name).unlink(missing_ok=True)
    run = load_run(d)
    series = build_series(run)
    assert series.equity == [] and series.drawdown == []
    assert compute(run, series)["drawdown"]["max"] is None
    assert how_it_ended(run)[0] == "crashed"


def test_fills_are_read_in_time_order(write_run: Callable[..., Path]) -> None:
    d = write_run(ticks=20, n_fills=5)
    lines = (d / "fills.jsonl").read_text().splitlines()
    (d / "fills.jsonl").write_text("\n".join(reversed(lines)) + "\n")
    stamps = [f["ts"] for f in load_run(d).fills]
    assert stamps == sorted(stamps) and len(stamps) == 5
    assert json.loads(lines[0])["ts"] == stamps[0]


def test_num_rejects_non_numbers() -> None:
    assert num("1.5") == 1.5 and num(2) == 2.0
    assert [num(x) for x in (None, True, "x", float("nan"), float("inf"), {})] == [None] * 6
