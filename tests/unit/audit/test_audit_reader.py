"""Reading the log back: --since, rows for show, following a growing and rotating log."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from perpbot.audit.reader import find_segment, follow, iter_records, matches, parse_since
from perpbot.audit.show import line, row
from perpbot.errors import BadInput


def test_parse_since() -> None:
    now = 1_000_000.0
    assert parse_since("30s", now) == now - 30
    assert parse_since("10m", now) == now - 600
    assert parse_since("2h", now) == now - 7200
    assert parse_since("1d", now) == now - 86400
    assert parse_since("1700000000", now) == 1700000000.0
    assert parse_since("2026-01-31T14:00", now) == datetime(2026, 1, 31, 14, 0).timestamp()
    assert parse_since("2026-01-31T14:00:00Z", now) == 1769868000.0
    with pytest.raises(BadInput, match="--since: got 'yesterday'"):
        parse_since("yesterday", now)


def test_find_segment(make_log: Any, logs: Path) -> None:
    with pytest.raises(BadInput, match="no audit logs"):
        find_segment(logs, None)
    make_log("run-a", n=2)
    b = make_log("run-b", n=2)
    assert find_segment(logs, None) == b.dir
    assert find_segment(logs, "run-a").name == "run-a"
    with pytest.raises(BadInput, match=r"--run: got '\.\./x'"):
        find_segment(logs, "../x")
    with pytest.raises(BadInput, match="expected a run with an audit log"):
        find_segment(logs, "run-zzz")


def test_rows_say_what_happened(make_log: Any) -> None:
    audit = make_log("run-a", n=10)
    recs = list(iter_records(audit.dir))
    kinds = [r["kind"] for r in recs]
    assert kinds[0] == "open" and kinds[-1] == "close"
    order = next(r for r in recs if r.get("method") == "create_order")
    seq, _when, kind, what, outcome, ms = row(order)
    assert kind == "exchange" and "create_order POST /fapi/v1/ticker/price" in what
    assert outcome == "200 ok" and ms == "1.5" and seq == str(order["seq"])
    decision = next(r for r in recs if r["kind"] == "decision")
    assert "[risk] RISK_NOTE: note 4" in line(decision)
    failed = {**order, "ok": False, "status": 400, "err_class": "InvalidOrder", "err_code": -2010}
    assert row(failed)[4] == "400 InvalidOrder code=-2010"
    assert [r["kind"] for r in recs if matches(r, None, True)] == ["decision", "decision"]
    assert not [r for r in recs if matches(r, recs[-1]["ts"] + 1, False)]


def test_follow_reads_across_rotation_until_the_close(open_log: Any, publish: Any) -> None:
    bus, audit = open_log("run-a", rotate_mb=0.002, checkpoint_every=1000)
    publish(bus, 3)
    batches = iter([5, 5, 5, 0])

    def sleep(_s: float) -> None:  # the bot writes more while we wait
        n = next(batches)
        if n:
            publish(bus, n, start=100)
        else:
            audit.close("duration")

    seen = list(follow(audit.dir, sleep=sleep, skip=2))
    assert len(list(audit.dir.glob("audit-*.jsonl"))) >= 3
    everything = list(iter_records(audit.dir))
    assert seen == everything[2:]
    assert seen[-1]["kind"] == "close"


def test_table_shows_layer_names_literally(make_log: Any, capsys: Any) -> None:
    from perpbot.audit.show import print_table

    audit = make_log("run-a", n=5)
    assert print_table(iter_records(audit.dir), "t") == 8
    out = capsys.readouterr().out
    assert "[risk] RISK_NOTE" in out and "create_order" in out
