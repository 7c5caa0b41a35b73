"""Where a new segment joins the chain.

A new run links its first record to the head of the chain: the latest signed checkpoint
under the state dir. If the run that wrote that checkpoint went on writing and then
crashed, the new run follows that run's log past the checkpoint to its last intact line
(skipping a torn last line) and links there. Those records after the dead run's last
signature were never signed by it, and anyone could have appended them (correctly
chained) after it died: the new run's signed first record *bounds* them (their number and
the hash of the last one: nothing can be added, removed or changed later) and *labels*
them ``recovered``: "recovered, unverified, N records", never the dead run's own.
``perpbot log verify`` reports them as unverified and fails on any order record among them.

If the head's run is still running (its pid is alive on this host), the new run links to
the head checkpoint itself: two bots then fork the chain, and neither vouches for the
other's unsigned records.
"""

from __future__ import annotations

import json
import os
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbot.audit.canonical import GENESIS, line_hash
from perpbot.audit.chain import ChainPosition, follow
from perpbot.audit.checkpoints import Checkpoint
from perpbot.audit.keystore import KeyStore
from perpbot.audit.segments import read_file, segment_files
from perpbot.audit.signing import Verifier
from perpbot.procs import pid_alive

# The writers open in this process (each registers itself): a log whose pid is ours is
# alive only while its writer is open.
LIVE_WRITERS: weakref.WeakSet[Any] = weakref.WeakSet()


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
    pos: ChainPosition | None = None
    torn = False
    last_file = head.file
    last_signed = head.seq

    def signed(_i: int, line: bytes, _h: str) -> bool:
        nonlocal last_signed
        last_signed = int(line[7 : line.index(b",")])  # b'{"seq":N,...'
        return True

    if alive(files[0]):
        return Link(head.hash, info)
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
            pos = ChainPosition(head.seq + 1, head.hash)
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
    unsigned = last_seq - last_signed
    recovered = {
        "head_seq": head.seq,
        "last_signed": last_signed,
        "unsigned": unsigned,
        "torn": torn,
        "verified": False,
        "label": f"recovered, unverified, {unsigned} records",
    }
    note = (
        f"run {head.run} did not close its log (it crashed): continuing the chain after its "
        f"last intact record (seq {last_seq}"
        + (", a torn last line was left as is" if torn else "")
        + f"); its last {unsigned} record(s) were never signed and are kept as recovered, "
        "unverified"
    )
    return Link(pos.prev, found, recovered, [note])


def alive(first_file: Path) -> bool:
    """Whether the run that wrote this log is still running (its open record's pid)."""
    lines = read_file(first_file).lines
    try:
        rec = json.loads(lines[0]) if lines else {}
    except ValueError:
        return False
    if not isinstance(rec, dict):
        return False
    if rec.get("pid") == os.getpid() and pid_alive(rec.get("pid"), rec.get("host")):
        return any(w.ctx.run == rec.get("run") and not w.closed for w in list(LIVE_WRITERS))
    ts = rec.get("ts")
    started = float(ts) if isinstance(ts, int | float) else None
    return pid_alive(rec.get("pid"), rec.get("host"), started)


def _find(lines: list[bytes], head: Checkpoint) -> int:
    marker = b'{"seq":%d,' % head.seq
    for i, line in enumerate(lines):
        if line.startswith(marker) and line_hash(line) == head.hash:
            return i
    return -1
