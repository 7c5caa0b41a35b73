"""The signed request log fills what a run folder lacks: events, exchange-reported weight."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from perpbot.report.build import build_report
from perpbot.report.data import load_run
from tests.unit.report.report_synth import T0


def _write_log(home: Path, run_id: str) -> None:
    folder = home / "logs" / run_id
    folder.mkdir(parents=True)
    records = [
        {"seq": 0, "kind": "open", "ts": T0, "run": run_id},
        {"seq": 1, "kind": "exchange", "ts": T0 + 1, "rate": {"x-mbx-used-weight-1m": "5"}},
        {"seq": 2, "kind": "exchange", "ts": T0 + 2, "rate": {"X-MBX-USED-WEIGHT-1M": "25"}},
        {"seq": 3, "kind": "exchange", "ts": T0 + 3, "ok": False},
        {
            "seq": 4,
            "kind": "decision",
            "ts": T0 + 4,
            "layer": "kill",
            "action": "trip",
            "code": "KILL_FAILURES",
            "sentence": "5 requests failed in a row",
            "data": {},
            "prev": "ab",
        },
    ]
    (folder / "audit-0001.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))


def test_events_and_weight_from_the_signed_log(
    write_run: Callable[..., Path], state_home: Path
) -> None:
    d = write_run("r-logged", end_reason="kill switch")
    (d / "events.jsonl").unlink(missing_ok=True)
    _write_log(state_home, "r-logged")
    run = load_run(d)
    assert [e["code"] for e in run.events] == ["KILL_FAILURES"]
    assert set(run.events[0]) == {"layer", "action", "code", "sentence", "ts"}
    assert any("read from the signed request log" in n for n in run.notes)
    assert run.exchange_weight == [(T0 + 1, 5.0), (T0 + 2, 25.0)]
    rep = build_report(d)
    assert rep.info.ended == "kill switch: KILL_FAILURES: 5 requests failed in a row"
    rate = rep.figure.axes[-1]
    labels = [ln.get_label() for ln in rate.get_lines()]
    assert "weight used (exchange header)" in labels
    assert load_run(d, signed_log=False).events == []


def test_the_run_folder_is_preferred(write_run: Callable[..., Path], state_home: Path) -> None:
    d = write_run("r-both", tick_extra=lambda i: {"rate": {"weight_used": i, "weight_limit": 2400}})
    (d / "events.jsonl").write_text("")
    _write_log(state_home, "r-both")
    run = load_run(d)
    assert run.events == [] and run.exchange_weight == [] and run.notes == []
