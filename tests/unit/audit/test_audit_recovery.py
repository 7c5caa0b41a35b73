"""After a crash the next run continues the chain; retention prunes old runs on the record."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from perpbot.audit.canonical import line_hash
from perpbot.audit.keystore import KeyStore
from perpbot.audit.signing import Verifier
from perpbot.audit.tree import verify_tree
from perpbot.events import Decision


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def verify(logs: Path) -> Any:
    store = KeyStore()
    return verify_tree(logs, verifier=Verifier(store.public_raw() or b""), heads=store.read_heads())


def crash(open_log: Any, publish: Any, run: str, *, torn: bool) -> Path:
    """A run that logged some events and died without closing (optionally mid-write)."""
    bus, audit = open_log(run, checkpoint_every=100, checkpoint_interval_s=3600)
    publish(bus, 10)
    bus.publish(Decision("kill", "trip", "KILL_TEST", "tripped"))  # signed right after
    publish(bus, 2, start=200)  # reads after the last checkpoint: unsigned at the crash
    path = audit.dir / "audit-0001.jsonl"
    audit._stop.set()
    audit.writer.closed = True  # as if the process had died: no close record
    os.close(audit.writer._fd)
    audit.writer._fd = -1
    if torn:
        with open(path, "ab") as fh:
            fh.write(b'{"seq":123,"prev":"')
    return path


def test_next_run_continues_after_the_last_intact_record(
    open_log: Any, publish: Any, make_log: Any, logs: Path, capsys: Any
) -> None:
    crashed = crash(open_log, publish, "run-a", torn=True)
    report = verify(logs)
    assert report.ok, report.to_dict()
    assert any("torn tail" in n for n in report.notes)
    assert any("2 record(s) are chained but not yet signed" in n for n in report.notes)
    intact = lines(crashed)
    b = make_log("run-b", n=3)
    opened = json.loads(lines(b.dir / "audit-0001.jsonl")[0])
    last = json.loads(intact[-1])
    assert opened["prev"] == line_hash(intact[-1])
    assert opened["link"] == {"run": "run-a", "seq": last["seq"], "file": "audit-0001.jsonl"}
    recovered = opened["recovered"]
    assert recovered["last_signed"] == last["seq"] - 2  # the checkpoint after the kill trip
    assert (recovered["unsigned"], recovered["torn"]) == (2, True)
    assert recovered["head_seq"] <= recovered["last_signed"]  # the head may lag a little
    assert any("did not close its log" in n for n in b.notes)
    report = verify(logs)
    assert report.ok, report.to_dict()
    # the crashed run's unsigned tail is now sealed by run-b's signed first record
    assert not any("not yet signed" in n for n in report.notes)
    assert any("torn tail" in n for n in report.notes)


def test_editing_a_crashed_tail_after_the_next_run_sealed_it(
    open_log: Any, publish: Any, make_log: Any, logs: Path
) -> None:
    crashed = crash(open_log, publish, "run-a", torn=False)
    make_log("run-b", n=3)
    ls = lines(crashed)
    ls[-1] = ls[-1].replace(b'"limit":201', b'"limit":7')
    crashed.write_bytes(b"".join(x + b"\n" for x in ls))
    report = verify(logs)
    assert not report.ok and report.damages[0].kind == "modified"


def test_retention_prunes_old_runs_and_says_so(make_log: Any, logs: Path) -> None:
    old = make_log("run-old", n=3)
    make_log("run-mid", n=3)
    past = time.time() - 10 * 86400
    for f in old.dir.iterdir():
        os.utime(f, (past, past))
    new = make_log("run-new", n=3, retention_days=5)
    assert not old.dir.exists()
    opened = json.loads(lines(new.dir / "audit-0001.jsonl")[0])
    assert [p["run"] for p in opened["pruned"]] == ["run-old"]
    report = verify(logs)
    assert report.ok, report.to_dict()  # run-mid links to a pruned run: on the record


def test_retention_zero_keeps_everything(make_log: Any, logs: Path) -> None:
    old = make_log("run-old", n=3)
    past = time.time() - 1000 * 86400
    for f in old.dir.iterdir():
        os.utime(f, (past, past))
    make_log("run-new", n=3, retention_days=0)
    assert old.dir.exists()
