"""The writer: chain, checkpoints, fsync policy, rotation, close, failures."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from typing import Any

import pytest

from perpbot.audit.canonical import GENESIS, line_hash, prefix
from perpbot.audit.checkpoints import Checkpoint
from perpbot.audit.keystore import KEY_ENTRY, SERVICE, head_entry, head_file
from perpbot.audit.segments import read_file, segment_files
from perpbot.audit.signing import Verifier, is_signed_line
from perpbot.audit.subscriber import attach_to_bus
from perpbot.errors import RuntimeFailure
from perpbot.events import Decision, EventBus


def all_lines(run_dir: Path) -> list[bytes]:
    return [line for f in segment_files(run_dir) for line in f.read_bytes().split(b"\n")[:-1]]


def records(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in all_lines(run_dir)]


def test_every_line_links_to_the_previous_one(make_log: Any) -> None:
    audit = make_log("run-a", n=30)
    lines = all_lines(audit.dir)
    recs = [json.loads(line) for line in lines]
    assert recs[0]["kind"] == "open" and recs[0]["prev"] == GENESIS and recs[0]["run"] == "run-a"
    assert recs[-1]["kind"] == "close" and recs[-1]["reason"] == "close"
    for i in range(1, len(lines)):
        assert lines[i].startswith(prefix(i, line_hash(lines[i - 1])))
    kinds = [r["kind"] for r in recs]
    assert kinds.count("exchange") == 24 and kinds.count("decision") == 6
    assert all(
        r["profile"] == "paper" and r["command"] == "run" for r in recs[1:] if "command" in r
    )


def test_signed_checkpoints_follow_orders_and_every_n_records(make_log: Any) -> None:
    audit = make_log("run-a", n=40, checkpoint_every=5, checkpoint_interval_s=3600)
    recs = records(audit.dir)
    unsigned = 0
    for prev, rec in itertools.pairwise(recs):
        if rec["kind"] in ("checkpoint", "close"):
            if prev.get("method") == "create_order":
                assert rec["reason"] == "order"
            unsigned = 0
        else:
            unsigned += 1
            assert unsigned <= 5
        if prev.get("method") == "create_order":
            assert rec["kind"] == "checkpoint" and rec["reason"] == "order"
    assert any(r.get("reason") == "count" for r in recs)
    verifier = Verifier(__import__("base64").b64decode(recs[0]["pub"]))
    for line in all_lines(audit.dir):
        if is_signed_line(line):
            assert verifier.check_line(line)


def test_interval_checkpoint_seals_a_quiet_log(open_log: Any, call: Any) -> None:
    bus, audit = open_log("run-a", checkpoint_interval_s=0.05, checkpoint_every=1000)
    bus.publish(call(bus, 1))
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if records(audit.dir)[-1]["kind"] == "checkpoint":
            break
        time.sleep(0.02)
    last = records(audit.dir)[-1]
    assert last["kind"] == "checkpoint" and last["reason"] == "interval"
    n = len(records(audit.dir))
    time.sleep(0.2)  # nothing new: no more checkpoints
    assert len(records(audit.dir)) == n


def test_external_checkpoint_and_head_in_file_and_keyring(
    make_log: Any, memory_keyring: Any
) -> None:
    audit = make_log("run-a", n=10)
    lines = all_lines(audit.dir)
    cp = Checkpoint.from_dict(json.loads((audit.dir / "checkpoint.json").read_text()))
    assert cp is not None and cp.seq == len(lines) - 1 and cp.hash == line_hash(lines[-1])
    verifier = Verifier(__import__("base64").b64decode(json.loads(lines[0])["pub"]))
    assert cp.valid(verifier)
    in_ring = json.loads(memory_keyring.entries[(SERVICE, head_entry())])
    assert in_ring == json.loads(head_file().read_text()) == cp.to_dict()
    assert (SERVICE, KEY_ENTRY) in memory_keyring.entries
    assert oct((audit.dir / "checkpoint.json").stat().st_mode & 0o777) == "0o600"


@pytest.mark.parametrize(("policy", "expected"), [("never", 0), ("orders", None), ("always", None)])
def test_fsync_policy(
    open_log: Any, publish: Any, monkeypatch: pytest.MonkeyPatch, policy: str, expected: int | None
) -> None:
    bus, audit = open_log("run-a", fsync=policy, checkpoint_every=1000, checkpoint_interval_s=3600)
    fd = audit.writer._fd
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda f: (synced.append(f), real(f))[1])
    publish(bus, 14)  # 10 reads, 2 orders (each followed by a checkpoint), 2 decisions
    log_syncs = synced.count(fd)
    if policy == "never":
        assert log_syncs == 0
    elif policy == "orders":
        assert log_syncs == 2  # each order made durable together with its checkpoint
    else:
        assert log_syncs == 14 + 2


def test_rotation_by_size_keeps_one_chain(make_log: Any) -> None:
    audit = make_log("run-a", n=60, rotate_mb=0.004, checkpoint_every=1000)
    files = segment_files(audit.dir)
    assert len(files) >= 3
    assert [f.name for f in files] == [f"audit-{i:04d}.jsonl" for i in range(1, len(files) + 1)]
    for f in files[:-1]:
        last = json.loads(f.read_bytes().split(b"\n")[-2])
        assert last["kind"] == "checkpoint" and last["reason"] == "rotate"
        assert f.stat().st_size <= 4096 + 1000  # + the checkpoints that close it
    lines = all_lines(audit.dir)
    for i in range(1, len(lines)):
        assert lines[i].startswith(prefix(i, line_hash(lines[i - 1])))


def test_rotation_by_day(open_log: Any, call: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import time as time_mod

    bus, audit = open_log("run-a")
    bus.publish(call(bus, 1))
    later = time_mod.time() + 86400
    monkeypatch.setattr("perpbot.audit.writer.time.time", lambda: later)
    bus.publish(call(bus, 2))
    # the rotation handed the closed file to the compressing thread: a day later it is
    # past compress_after_s (1 h), so once that thread is done it is compressed
    assert audit.writer.wait_compressed(timeout=30)
    names = [f.name for f in segment_files(audit.dir)]
    assert names == ["audit-0001.jsonl.gz", "audit-0002.jsonl"]
    last = json.loads(read_file(audit.dir / names[0]).lines[-1])
    assert last["kind"] == "checkpoint" and last["reason"] == "rotate"


def test_close_is_idempotent_and_unsubscribes(open_log: Any, call: Any) -> None:
    bus, audit = open_log("run-a")
    audit.close("duration")
    audit.close()
    bus.publish(call(bus, 1))  # after close: not recorded, no error
    recs = records(audit.dir)
    assert recs[-1]["kind"] == "close" and recs[-1]["reason"] == "duration"
    assert [r["kind"] for r in recs] == ["open", "close"]


def test_a_run_log_is_never_reopened(make_log: Any, logs: Path) -> None:
    make_log("run-a", n=1)
    with pytest.raises(RuntimeFailure, match="already exists"):
        attach_to_bus(EventBus(), run_id="run-a", profile=None, command="run", root=logs)


def test_a_write_failure_reaches_the_publisher(open_log: Any, call: Any) -> None:
    bus, audit = open_log("run-a")
    os.close(audit.writer._fd)  # the disk went away
    with pytest.raises(RuntimeFailure, match="cannot record requests"):
        bus.publish(call(bus, 1))
    with pytest.raises(RuntimeFailure):  # and stays broken
        bus.publish(Decision("risk", "reject", "RISK_X", "no"))
    audit.writer._fd = -1
    audit.close()
