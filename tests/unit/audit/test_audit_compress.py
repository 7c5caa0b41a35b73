"""Compressed log files: crash-safe swap, rotation off the request path, readers unaware."""

from __future__ import annotations

import gzip
import os
from pathlib import Path
from typing import Any

import pytest

from perpbot.audit.compress import compress_file
from perpbot.audit.keystore import KeyStore
from perpbot.audit.reader import follow, iter_records
from perpbot.audit.records import RecordContext, event_body
from perpbot.audit.segments import last_modified, list_segments, segment_files
from perpbot.audit.signing import Verifier
from perpbot.audit.tree import verify_tree
from perpbot.audit.writer import AuditWriter, WriterSettings
from perpbot.events import EventBus


def check(logs: Path) -> Any:
    store = KeyStore()
    return verify_tree(logs, verifier=Verifier(store.public_raw() or b""))


def test_rotated_files_are_compressed_while_the_run_goes_on(logs: Path, call: Any) -> None:
    writer = AuditWriter(
        RecordContext(run="run-r", profile=None, command="run"),
        WriterSettings(rotate_bytes=1500, compress_after_s=0.0, checkpoint_interval_s=3600),
        KeyStore(),
        logs,
    )
    bus = EventBus()
    for i in range(40):
        body = event_body(call(bus, i), writer.ctx)
        assert body is not None
        writer.append(body)
    assert writer.wait_compressed(timeout=30)
    files = segment_files(writer.dir)
    assert len(files) >= 3 and files[-1] == writer.path  # the open file stays plain
    assert all(f.name.endswith(".jsonl.gz") for f in files[:-1])  # every closed one packed
    writer.close()
    seqs = [r["seq"] for r in iter_records(writer.dir)]
    assert seqs == list(range(len(seqs))) and len(seqs) > 40
    assert check(logs).ok


def test_half_done_swap_and_follow_across_compression(make_log: Any, logs: Path) -> None:
    audit = make_log("run-a", n=30)
    plain = audit.dir / "audit-0001.jsonl"
    data = plain.read_bytes()
    # a crash between writing the .gz and removing the original: both exist
    (audit.dir / "audit-0001.jsonl.gz").write_bytes(gzip.compress(data))
    assert segment_files(audit.dir) == [plain]
    assert check(logs).ok
    (audit.dir / "audit-0001.jsonl.gz").unlink()
    mtime = plain.stat().st_mtime - 5000
    os.utime(plain, (mtime, mtime))
    packed = compress_file(plain)
    assert not plain.exists() and gzip.decompress(packed.read_bytes()) == data
    assert abs(packed.stat().st_mtime - mtime) < 1  # retention still sees the old age
    assert oct(packed.stat().st_mode & 0o777) == "0o600"
    followed = list(follow(audit.dir, sleep=lambda _s: None))
    assert followed[-1]["kind"] == "close" and len(followed) == data.count(b"\n")


def test_a_listing_read_just_before_a_swap_still_finds_every_file(
    make_log: Any, logs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    audit = make_log("run-r", n=60, rotate_mb=0.004, checkpoint_every=1000)
    assert audit.writer.wait_compressed(timeout=30)  # its threads left the files plain
    plain = segment_files(audit.dir)
    assert all(not f.name.endswith(".gz") for f in plain)
    listed = list(audit.dir.iterdir())  # a reader (`log verify`) read the folder...
    packed = compress_file(plain[0])  # ...and a bot's thread swapped a file right after
    assert compress_file(plain[0]) == packed  # a second compressor finds it done
    iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda p: iter(listed) if p == audit.dir else iterdir(p))
    files = segment_files(audit.dir)
    assert [f.name for f in files] == [packed.name] + [f.name for f in plain[1:]]
    assert list_segments(logs) == [audit.dir] and last_modified(audit.dir) > 0
    assert check(logs).ok
