"""The verifier names the first bad record and the kind of damage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from perpbot.audit.canonical import encode, line_hash
from perpbot.audit.keystore import KeyStore, head_file
from perpbot.audit.segments import segment_files
from perpbot.audit.signing import Verifier, new_private_key, public_raw, sign_line
from perpbot.audit.tree import TreeReport, verify_tree


def check(
    logs: Path, *, verifier: Verifier | None = None, runs: list[str] | None = None
) -> TreeReport:
    store = KeyStore()
    raw = store.public_raw()
    v = verifier or (Verifier(raw) if raw else None)
    return verify_tree(logs, verifier=v, runs=runs, heads=store.read_heads())


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write(path: Path, new: list[bytes]) -> None:
    path.write_bytes(b"".join(x + b"\n" for x in new))


def first(report: TreeReport) -> Any:
    assert not report.ok, report.to_dict()
    return report.damages[0]


@pytest.fixture
def log(make_log: Any, logs: Path) -> Path:
    """A closed 30-event log in one file: returns the file."""
    audit = make_log("run-a", n=30, checkpoint_interval_s=3600)
    return audit.dir / "audit-0001.jsonl"


def test_an_untouched_log_verifies(log: Path, logs: Path) -> None:
    report = check(logs)
    assert report.ok and report.records == len(lines(log)) and not report.notes


def test_modified_record(log: Path, logs: Path) -> None:
    ls = lines(log)
    ls[3] = ls[3].replace(b'"limit":2', b'"limit":3')
    write(log, ls)
    d = first(check(logs))
    assert (d.kind, d.seq, d.line, d.file) == ("modified", 3, 4, "audit-0001.jsonl")
    assert "run-a/audit-0001.jsonl line 4 (seq 3): modified" in d.describe()


def test_deleted_record(log: Path, logs: Path) -> None:
    ls = lines(log)
    del ls[5]
    write(log, ls)
    d = first(check(logs))
    assert (d.kind, d.seq) == ("deleted", 6) and "seq 5 missing" in d.detail


def test_inserted_copy_and_forged_record(log: Path, logs: Path) -> None:
    ls = lines(log)
    write(log, [*ls[:8], ls[4], *ls[8:]])
    d = first(check(logs))
    assert (d.kind, d.line) == ("inserted", 9) and "copy" in d.detail
    forged = encode(8, line_hash(ls[7]), {"kind": "exchange", "run": "run-a", "method": "x"})
    write(log, [*ls[:8], forged, *ls[8:]])
    d = first(check(logs))
    assert (d.kind, d.line, d.seq) == ("inserted", 9, 8)


def test_reordered_records(log: Path, logs: Path) -> None:
    ls = lines(log)
    ls[6], ls[7] = ls[7], ls[6]
    write(log, ls)
    d = first(check(logs))
    assert (d.kind, d.line) == ("reordered", 7)


def test_truncated_tail_against_the_checkpoint(log: Path, logs: Path) -> None:
    ls = lines(log)
    write(log, ls[:-4])
    d = first(check(logs))
    assert d.kind == "truncated" and f"seq {len(ls) - 1} was written" in d.detail


def test_truncated_tail_without_checkpoint_json_is_caught_by_the_head(
    log: Path, logs: Path, memory_keyring: Any
) -> None:
    ls = lines(log)
    write(log, ls[:-4])
    (log.parent / "checkpoint.json").unlink()
    head_file().unlink()  # only the keyring copy of the head is left
    d = first(check(logs))
    assert d.kind == "truncated" and "keyring" in d.detail


def test_torn_last_line_is_not_tampering(open_log: Any, publish: Any, logs: Path) -> None:
    bus, audit = open_log("run-a", checkpoint_interval_s=3600)
    publish(bus, 6)
    with open(audit.dir / "audit-0001.jsonl", "ab") as fh:
        fh.write(b'{"seq":99,"prev":"abc","kind":"exch')  # a crash mid-write
    report = check(logs)
    assert report.ok, report.to_dict()
    assert any("torn tail" in n for n in report.notes)
    assert any("not closed" in n for n in report.notes)


def test_signature_invalid_and_key_mismatch(log: Path, logs: Path) -> None:
    ls = lines(log)
    idx = next(i for i, x in enumerate(ls) if b'"kind":"checkpoint"' in x)
    rec = json.loads(ls[idx])
    sig = rec["sig"]
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    write(log, [*ls[:idx], ls[idx].replace(sig.encode(), flipped.encode()), *ls[idx + 1 :]])
    d = first(check(logs))
    assert (d.kind, d.seq) == ("signature invalid", idx)
    write(log, ls)
    other = Verifier(public_raw(new_private_key()))
    d = first(check(logs, verifier=other))
    assert (d.kind, d.seq) == ("key mismatch", 0)


def test_resigned_with_another_key(log: Path, logs: Path) -> None:
    ls = lines(log)
    attacker = new_private_key()
    idx = next(i for i, x in enumerate(ls) if b'"kind":"checkpoint"' in x)
    unsigned = ls[idx][: ls[idx].rindex(b',"sig":')] + b"}"
    write(log, [*ls[:idx], sign_line(attacker, unsigned), *ls[idx + 1 :]])
    assert first(check(logs)).kind == "signature invalid"


def test_records_after_the_close_are_inserted(log: Path, logs: Path) -> None:
    ls = lines(log)
    extra = encode(len(ls), line_hash(ls[-1]), {"kind": "exchange", "run": "run-a", "method": "x"})
    write(log, [*ls, extra])
    d = first(check(logs))
    assert (d.kind, d.line) == ("inserted", len(ls) + 1)


def test_spliced_record_from_another_run(make_log: Any, logs: Path, log: Path) -> None:
    other = make_log("run-b", n=10)
    theirs = lines(other.dir / "audit-0001.jsonl")
    ls = lines(log)
    write(log, [*ls[:5], theirs[5], *ls[6:]])
    d = first(check(logs, runs=["run-a"]))
    assert d.kind == "inserted" and "run-b" in d.detail


def test_rotated_files_deleted_or_missing(make_log: Any, logs: Path) -> None:
    audit = make_log("run-r", n=60, rotate_mb=0.004, checkpoint_every=1000)
    files = segment_files(audit.dir)
    assert len(files) >= 3 and check(logs).ok
    middle = files[1].read_bytes()
    files[1].unlink()
    d = first(check(logs))
    assert d.kind == "deleted" and "audit-0002.jsonl is missing" in d.detail
    files[1].write_bytes(middle)
    last = files[-1].read_bytes()
    files[-1].unlink()
    d = first(check(logs))
    assert d.kind == "truncated"
    files[-1].write_bytes(last)
    assert check(logs).ok


def test_chain_spans_runs_and_a_cut_older_run_is_caught(make_log: Any, logs: Path) -> None:
    a = make_log("run-a", n=10)
    b = make_log("run-b", n=10)
    la = lines(a.dir / "audit-0001.jsonl")
    first_b = json.loads(lines(b.dir / "audit-0001.jsonl")[0])
    assert first_b["link"] == {"run": "run-a", "seq": len(la) - 1, "file": "audit-0001.jsonl"}
    assert first_b["prev"] == line_hash(la[-1])
    assert check(logs).ok and check(logs, runs=["run-b"]).ok
    # cut run-a's tail and its checkpoint.json: run-b's link still says how far it went
    write(a.dir / "audit-0001.jsonl", la[:-2])
    (a.dir / "checkpoint.json").unlink()
    d = first(check(logs))
    assert (d.kind, d.run) == ("truncated", "run-a") and "run run-b's first record" in d.detail
    # delete run-a entirely
    import shutil

    shutil.rmtree(a.dir)
    d = first(check(logs))
    assert (d.kind, d.run) == ("deleted", "run-a")


def test_deleting_the_newest_run_is_caught_by_the_head(make_log: Any, logs: Path) -> None:
    import shutil

    make_log("run-a", n=5)
    b = make_log("run-b", n=5)
    shutil.rmtree(b.dir)
    d = first(check(logs))
    assert (d.kind, d.run) == ("deleted", "run-b")


def test_verify_one_run_by_path(make_log: Any, logs: Path) -> None:
    make_log("run-a", n=5)
    b = make_log("run-b", n=5)
    store = KeyStore()
    report = verify_tree(b.dir, verifier=Verifier(store.public_raw() or b""))
    assert report.ok and len(report.segments) == 1
