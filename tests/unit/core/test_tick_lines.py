"""ticks.jsonl lines: full at the first tick and every ``detail_every_s``, core in between
(only when something changed), and a core line keeps everything `perpbot report` reads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perpbot.engine.journal import RunJournal
from perpbot.engine.ledger import Ledger
from perpbot.engine.report import RunReporter, core_tick
from perpbot.engine.state import PositionSnapshot, RunState
from perpbot.paths import run_dir
from perpbot.report.data import load_run, slim_tick

SYM = "BTC/USDT:USDT"


def _extras() -> dict[str, Any]:
    return {
        "rate": {
            "weight_used": 33,
            "weight_limit": 2280,
            "weight_nominal": 2400,
            "weight_window": "1m",
            "orders": {"1m": {"used": 7, "limit": 1140}},
            "last_change": "weight limit 2400 per 1m read from the exchange's exchangeInfo",
        },
        "risk": {
            "index": {SYM: {"price": 60010.5, "healthy": True, "sources": ["a", "b"]}},
            "orders": [{"client_order_id": "pb-1", "price": 59975.4, "side": "buy"}] * 5,
        },
        "streams": {"reconnects": 0, "streams": [{"name": f"mark {SYM}", "state": "live"}]},
    }


def _reporter(state_home: Path, detail_every_s: float) -> tuple[RunReporter, RunState]:
    state = RunState(run_id="r-ticks", strategy="grid", symbols=[SYM])
    state.marks[SYM] = 60000.0
    state.equity = 10000.0
    state.positions[SYM] = PositionSnapshot(
        symbol=SYM, amount=0.003, entry_price=59990.0, mark_price=60000.0
    )
    extras = _extras()
    reporter = RunReporter(
        state=state,
        ledger=Ledger(),
        journal=RunJournal("r-ticks"),
        tick_providers=[lambda: extras],
        summary_extras={},
        detail_every_s=detail_every_s,
    )
    return reporter, state


def test_full_line_first_then_core_lines_only_on_change_then_full_again(
    state_home: Path,
) -> None:
    reporter, state = _reporter(state_home, detail_every_s=60.0)
    first = reporter.tick_line(reporter.snapshot(), now=1000.0)
    assert first is not None and "risk" in first and "streams" in first  # full
    assert first["rate"]["orders"] and first["risk"]["orders"]
    # nothing changed but the clock: no line
    assert reporter.tick_line(reporter.snapshot(), now=1001.0) is None
    state.marks[SYM] = 60001.0
    core = reporter.tick_line(reporter.snapshot(), now=1002.0)
    assert core is not None and "risk" not in core and "streams" not in core
    assert core["marks"] == {SYM: 60001.0}
    assert core["rate"] == {"weight_used": 33, "weight_limit": 2280, "weight_nominal": 2400}
    assert core["index"][SYM]["price"] == 60010.5
    assert reporter.tick_line(reporter.snapshot(), now=1003.0) is None
    state.positions[SYM] = PositionSnapshot(
        symbol=SYM, amount=0.006, entry_price=59995.0, mark_price=60001.0
    )
    moved = reporter.tick_line(reporter.snapshot(), now=1004.0)
    assert moved is not None and moved["positions"][SYM]["amount"] == 0.006
    again = reporter.tick_line(reporter.snapshot(), now=1060.0)  # detail_every_s later
    assert again is not None and "risk" in again


def test_zero_writes_every_tick_in_full(state_home: Path) -> None:
    reporter, _ = _reporter(state_home, detail_every_s=0.0)
    lines = [reporter.tick_line(reporter.snapshot(), now=1000.0 + i) for i in range(3)]
    assert all(line is not None and "risk" in line for line in lines)


@pytest.mark.parametrize("drop", [(), ("rate",), ("risk",), ("rate", "risk")])
def test_a_core_line_keeps_what_a_report_reads(state_home: Path, drop: tuple[str, ...]) -> None:
    reporter, _ = _reporter(state_home, detail_every_s=60.0)
    full = reporter.tick_record(reporter.snapshot())
    for key in drop:
        full.pop(key)
    assert slim_tick(core_tick(full)) == slim_tick(full)


def test_report_reads_a_thinned_journal(state_home: Path) -> None:
    reporter, state = _reporter(state_home, detail_every_s=10.0)
    written = 0
    for i in range(30):
        state.marks[SYM] = 60000.0 + (i // 2)  # changes every other tick
        line = reporter.tick_line(reporter.snapshot(), now=1000.0 + i)
        if line is not None:
            reporter.journal.tick(line)
            written += 1
    reporter.journal.close()
    run = load_run(run_dir("r-ticks"), signed_log=False)
    assert len(run.ticks) == written and 15 <= written < 30
    marks = [t["marks"][SYM] for t in run.ticks]
    assert marks == sorted(set(marks)) and marks[-1] == 60014.0  # every change, once
    assert all(t["rate"]["used"] == 33 and t["index"] == {SYM: 60010.5} for t in run.ticks)
