"""Where a new segment joins the chain, and retention of old segments.

A new run links its first record to the head of the chain: the latest signed checkpoint
under the state dir. If the run that wrote that checkpoint went on writing and then
crashed, the new run follows that run's log past the checkpoint to its last intact line
(skipping a torn last line) and links there, recording what it found. Its own first record
is signed, which seals the crashed run's unsigned tail as it was found.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbot.audit.canonical import GENESIS, line_hash
from perpbot.audit.chain import Position, follow
from perpbot.audit.checkpoints import Checkpoint
from perpbot.audit.keystore import KeyStore
from perpbot.audit.segments import last_modified, list_segments, read_file, segment_files
from perpbot.audit.signing import Verifier

MAX_PRUNED = 1000


@dataclass
class Link:
    prev: str = GENESIS
    info: dict[str, Any] | None = None
    recovered: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def current_head(store: KeyStore, verifier: Verifier) -> Checkpoint | None:
    """The newest head copy signed by our key (keyring or file)."""
    best: Checkpoint | None = None
    for _, data in store.read_heads():
        cp = Checkpoint.from_dict(data)
        if cp is None or cp.key != verifier.fingerprint or not cp.valid(verifier):
            continue
        if best is None or cp.ts > best.ts:
            best = cp
    return best


def find_link(store: KeyStore, verifier: Verifier, root: Path) -> Link:
    head = current_head(store, verifier)
    if head is None:
        return Link()
    info = {"run": head.run, "seq": head.seq, "file": head.file}
    files = segment_files(root / head.run)
    names = [f.name for f in files]
    if head.file not in names:
        return Link(
            head.hash,
            info,
            {"missing": True},
            [f"the log of run {head.run} ({head.file}) is missing; linking to its checkpoint"],
        )
    pos: Position | None = None
    torn = False
    last_file = head.file
    last_signed = head.seq

    def signed(_i: int, line: bytes, _h: str) -> bool:
        nonlocal last_signed
        last_signed = int(line[7 : line.index(b",")])  # b'{"seq":N,...'
        return True

    for path in files[names.index(head.file) :]:
        fl = read_file(path)
        start = 0
        if pos is None:
            start = _find(fl.lines, head)
            if start < 0:
                return Link(
                    head.hash,
                    info,
                    {"missing": True},
                    [
                        f"run {head.run}'s log no longer holds its checkpointed record "
                        f"(seq {head.seq}); linking to the checkpoint"
                    ],
                )
            pos = Position(head.seq + 1, head.hash)
            start += 1
        stop = follow(fl.lines, start, pos, signed)
        if stop > start:
            last_file = path.name
        if stop < len(fl.lines) or (fl.partial is not None):
            torn = fl.partial is not None and stop == len(fl.lines)
            break
    assert pos is not None
    last_seq = pos.seq - 1
    if last_seq == head.seq:
        return Link(head.hash, info)
    found = {"run": head.run, "seq": last_seq, "file": last_file}
    recovered = {
        "head_seq": head.seq,
        "last_signed": last_signed,
        "unsigned": last_seq - last_signed,
        "torn": torn,
    }
    note = (
        f"run {head.run} did not close its log (crashed, or still running): continuing the "
        f"chain after its last intact record (seq {last_seq}"
        + (", a torn last line was left as is)" if torn else ")")
    )
    return Link(pos.prev, found, recovered, [note])


def _find(lines: list[bytes], head: Checkpoint) -> int:
    marker = b'{"seq":%d,' % head.seq
    for i, line in enumerate(lines):
        if line.startswith(marker) and line_hash(line) == head.hash:
            return i
    return -1


def _last_record(segment: Path) -> dict[str, Any] | None:
    for path in reversed(segment_files(segment)):
        fl = read_file(path)
        if fl.lines:
            line = fl.lines[-1]
            try:
                seq = json.loads(line).get("seq")
            except ValueError:
                seq = None
            return {"run": segment.name, "seq": seq, "hash": line_hash(line)}
    return None


def _carried(segment: Path) -> list[dict[str, Any]]:
    """The prune entries a segment's open record carries (kept when it is pruned in turn)."""
    files = segment_files(segment)
    if not files:
        return []
    lines = read_file(files[0]).lines
    try:
        rec = json.loads(lines[0]) if lines else {}
    except ValueError:
        return []
    pruned = rec.get("pruned") if isinstance(rec, dict) else None
    return [p for p in pruned if isinstance(p, dict)] if isinstance(pruned, list) else []


def prune(root: Path, retention_days: float, keep: set[str]) -> list[dict[str, Any]]:
    """Delete segments untouched for ``retention_days``; what was deleted, for the record."""
    if retention_days <= 0:
        return []
    cutoff = time.time() - retention_days * 86400.0
    entries: list[dict[str, Any]] = []
    for segment in list_segments(root):
        if segment.name in keep or last_modified(segment) >= cutoff:
            continue
        last = _last_record(segment)
        entries.extend(_carried(segment))
        if last is not None:
            entries.append(last)
        with contextlib.suppress(OSError):
            shutil.rmtree(segment)
    return entries[-MAX_PRUNED:]
