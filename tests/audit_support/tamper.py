"""TEST-ONLY: the tamperings an attacker could apply to a copy of the signed log.

A ``Snapshot`` holds every file of a logs folder in memory; each tampering function changes
a snapshot the way someone with write access to the state dir could (but without the
signing key), and says what it did. ``perpbot.audit`` must detect every one.
"""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbot.audit.canonical import encode, line_hash
from perpbot.audit.segments import file_number
from perpbot.audit.signing import fingerprint, public_raw, sign_line, split_signed_line


@dataclass
class Snapshot:
    """run -> file name -> bytes (log files and checkpoint.json)."""

    runs: dict[str, dict[str, bytes]] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path) -> Snapshot:
        snap = cls()
        for run_dir in sorted(p for p in root.iterdir() if p.is_dir()):
            snap.runs[run_dir.name] = {f.name: f.read_bytes() for f in run_dir.iterdir()}
        return snap

    def write(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)
        for run, files in self.runs.items():
            d = root / run
            d.mkdir(parents=True, exist_ok=True)
            for name, data in files.items():
                (d / name).write_bytes(data)

    def copy(self) -> Snapshot:
        return Snapshot(copy.deepcopy(self.runs))

    def log_files(self, run: str) -> list[str]:
        names = [n for n in self.runs[run] if file_number(Path(n)) is not None]
        return sorted(names, key=lambda n: file_number(Path(n)) or 0)

    def lines(self, run: str) -> list[tuple[str, int, bytes]]:
        """Every complete line of a run, in order: (file, index, bytes)."""
        out = []
        for name in self.log_files(run):
            for i, line in enumerate(self.runs[run][name].split(b"\n")[:-1]):
                out.append((name, i, line))
        return out

    def set_lines(self, run: str, name: str, lines: list[bytes]) -> None:
        self.runs[run][name] = b"".join(line + b"\n" for line in lines)

    def file_lines(self, run: str, name: str) -> list[bytes]:
        return self.runs[run][name].split(b"\n")[:-1]


def reencode(rec: dict[str, Any]) -> bytes:
    """A record as the writer would write it (signature kept as it was)."""
    body = {k: v for k, v in rec.items() if k not in ("seq", "prev", "sig")}
    line = encode(rec["seq"], rec["prev"], body)
    if "sig" in rec:
        line = line[:-1] + b',"sig":' + json.dumps(rec["sig"]).encode() + b"}"
    return line


def _changed(value: Any, rng: random.Random) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice([-1, 1, 7, 1000])
    if isinstance(value, float):
        return value * 1.01 + 0.5
    if isinstance(value, str):
        if value and rng.random() < 0.5:
            i = rng.randrange(len(value))
            return value[:i] + ("X" if value[i] != "X" else "Y") + value[i + 1 :]
        return value + "x"
    if value is None:
        return 0
    if isinstance(value, dict):
        return {**value, "forged": 1} if rng.random() < 0.5 or not value else {}
    if isinstance(value, list):
        return [*value, 1]
    return "forged"


def _pick_run(snap: Snapshot, rng: random.Random) -> str:
    return rng.choice(sorted(snap.runs))


def edit_field(snap: Snapshot, rng: random.Random, **_: Any) -> str:
    run = _pick_run(snap, rng)
    name, idx, line = rng.choice(snap.lines(run))
    rec = json.loads(line)
    key = rng.choice(sorted(rec))
    rec[key] = _changed(rec[key], rng)
    lines = snap.file_lines(run, name)
    try:
        lines[idx] = reencode(rec)
    except (KeyError, TypeError, ValueError):  # seq/prev no longer encodable: edit the bytes
        lines[idx] = line.replace(b'"seq":', b'"seq": ', 1)
    snap.set_lines(run, name, lines)
    return f"edit {key} of {run}/{name}:{idx + 1}"


def delete_line(snap: Snapshot, rng: random.Random, **_: Any) -> str:
    run = _pick_run(snap, rng)
    name, idx, _line = rng.choice(snap.lines(run))
    lines = snap.file_lines(run, name)
    del lines[idx]
    snap.set_lines(run, name, lines)
    return f"delete {run}/{name}:{idx + 1}"


def duplicate_line(snap: Snapshot, rng: random.Random, **_: Any) -> str:
    run = _pick_run(snap, rng)
    all_lines = snap.lines(run)
    _, _, line = rng.choice(all_lines)
    name, idx, _ = rng.choice(all_lines)
    lines = snap.file_lines(run, name)
    at = idx + rng.choice([0, 1])
    lines.insert(at, line)
    snap.set_lines(run, name, lines)
    return f"duplicate a line at {run}/{name}:{at + 1}"


def swap_lines(snap: Snapshot, rng: random.Random, **_: Any) -> str:
    run = _pick_run(snap, rng)
    all_lines = snap.lines(run)
    a = rng.randrange(len(all_lines))
    b = min(a + 1, len(all_lines) - 1) if rng.random() < 0.5 else rng.randrange(len(all_lines))
    if a == b:
        b = a - 1 if a else a + 1
    (fa, ia, la), (fb, ib, lb) = all_lines[a], all_lines[b]
    if fa == fb:
        lines = snap.file_lines(run, fa)
        lines[ia], lines[ib] = lines[ib], lines[ia]
        snap.set_lines(run, fa, lines)
    else:
        la_lines, lb_lines = snap.file_lines(run, fa), snap.file_lines(run, fb)
        la_lines[ia], lb_lines[ib] = lb, la
        snap.set_lines(run, fa, la_lines)
        snap.set_lines(run, fb, lb_lines)
    return f"swap {run} lines {a} and {b}"


def insert_forged(snap: Snapshot, rng: random.Random, **_: Any) -> str:
    """A well-formed record with a correct link to the line before it (no key needed)."""
    run = _pick_run(snap, rng)
    all_lines = snap.lines(run)
    pos = rng.randrange(1, len(all_lines) + 1)
    name, idx, before = all_lines[pos - 1]
    seq = json.loads(before)["seq"] + 1
    body = {
        "kind": "exchange",
        "run": run,
        "command": "run",
        "method": "create_order",
        "params": {"symbol": "BTC/USDT:USDT", "side": "buy", "amount": 100.0},
        "ok": True,
        "status": 200,
        "ts": json.loads(before).get("ts", 0),
        "mono": 0.0,
        "latency_ms": 1.0,
        "req": 999999,
    }
    lines = snap.file_lines(run, name)
    lines.insert(idx + 1, encode(seq, line_hash(before), body))
    snap.set_lines(run, name, lines)
    return f"insert a forged order after {run}/{name}:{idx + 1}"


def truncate(snap: Snapshot, rng: random.Random, **_: Any) -> str:
    run = _pick_run(snap, rng)
    files = snap.log_files(run)
    name = files[-1]
    data = snap.runs[run][name]
    if rng.random() < 0.2 and len(files) > 1:
        del snap.runs[run][name]
        return f"delete the last file {run}/{name}"
    cut = rng.randrange(0, len(data))
    snap.runs[run][name] = data[:cut]
    return f"truncate {run}/{name} to {cut} of {len(data)} bytes"


def delete_file(snap: Snapshot, rng: random.Random, **_: Any) -> str:
    candidates = [r for r in snap.runs if len(snap.log_files(r)) > 1]
    if not candidates:
        return truncate(snap, rng)
    run = rng.choice(sorted(candidates))
    name = rng.choice(snap.log_files(run))
    del snap.runs[run][name]
    return f"delete file {run}/{name}"


def swap_files(snap: Snapshot, rng: random.Random, **_: Any) -> str:
    candidates = [r for r in snap.runs if len(snap.log_files(r)) > 1]
    if not candidates:
        return swap_lines(snap, rng)
    run = rng.choice(sorted(candidates))
    a, b = rng.sample(snap.log_files(run), 2)
    files = snap.runs[run]
    files[a], files[b] = files[b], files[a]
    return f"swap files {run}/{a} and {b}"


def splice(snap: Snapshot, rng: random.Random, *, other: Snapshot, **_: Any) -> str:
    """Replace the tail of one log with the tail of another log (same signing key)."""
    run = _pick_run(snap, rng)
    choices = sorted(r for r in other.runs if r != run) or sorted(other.runs)
    other_run = rng.choice(choices)
    mine, theirs = snap.lines(run), other.lines(other_run)
    cut = rng.randrange(1, len(mine))
    start = rng.randrange(1, len(theirs))
    name = mine[cut][0]
    head = [line for f, _, line in mine[:cut] if f == name]
    tail = [line for _, _, line in theirs[start:]]
    for f in snap.log_files(run)[snap.log_files(run).index(name) + 1 :]:
        del snap.runs[run][f]
    snap.set_lines(run, name, head + tail)
    return f"splice {other_run} from line {start} into {run} at line {cut}"


def _rechain(
    snap: Snapshot, run: str, edit_at: int, rng: random.Random, resign: Callable[[bytes], bytes]
) -> None:
    """Edit one record, then recompute every link after it (and re-sign signed lines)."""
    entries = snap.lines(run)
    by_file: dict[str, list[bytes]] = {n: [] for n in snap.log_files(run)}
    prev: str | None = None
    for k, (name, _, line) in enumerate(entries):
        rec = json.loads(line)
        if k == edit_at:
            key = rng.choice([k for k in sorted(rec) if k not in ("seq", "prev", "sig", "kind")])
            rec[key] = _changed(rec[key], rng)
        if prev is not None:
            rec["prev"] = prev
        signed = split_signed_line(line) is not None
        rec.pop("sig", None)
        new = reencode(rec)
        if signed:
            new = resign(new)
        by_file[name].append(new)
        prev = line_hash(new)
    for name, lines in by_file.items():
        snap.set_lines(run, name, lines)


def rechain(snap: Snapshot, rng: random.Random, **_: Any) -> str:
    """Edit a record and recompute the chain; signatures are kept (now wrong)."""
    run = _pick_run(snap, rng)
    at = rng.randrange(len(snap.lines(run)))

    def stale_sig(unsigned: bytes) -> bytes:  # a well-formed signature over other bytes
        return unsigned[:-1] + b',"sig":"' + b"A" * 86 + b'=="}'

    _rechain(snap, run, at, rng, stale_sig)
    return f"edit {run} record {at} and recompute the chain"


def resign(snap: Snapshot, rng: random.Random, *, attacker_key: Any, **_: Any) -> str:
    """Edit a record, recompute the chain and re-sign everything with another key."""
    run = _pick_run(snap, rng)
    at = rng.randrange(len(snap.lines(run)))
    pub = public_raw(attacker_key)
    swap_key = rng.random() < 0.5

    def sign(unsigned: bytes) -> bytes:
        rec = json.loads(unsigned)
        if swap_key:
            if rec.get("kind") == "open":
                import base64

                rec["pub"] = base64.b64encode(pub).decode()
            rec["key"] = fingerprint(pub)
            unsigned = reencode(rec)
        return sign_line(attacker_key, unsigned)

    _rechain(snap, run, at, rng, sign)
    return f"edit {run} record {at}, recompute the chain, re-sign with another key"


def rollback(snap: Snapshot, rng: random.Random, **_: Any) -> str:
    """Cut a run right after an earlier signed checkpoint and drop its checkpoint.json (an
    attacker cannot forge a checkpoint; the chain head and later runs' links remain)."""
    run = _pick_run(snap, rng)
    entries = snap.lines(run)
    signed = [k for k, (_, _, line) in enumerate(entries[:-1]) if split_signed_line(line)]
    k = rng.choice(signed)
    name, idx, _ = entries[k]
    files = snap.log_files(run)
    for f in files[files.index(name) + 1 :]:
        del snap.runs[run][f]
    snap.set_lines(run, name, snap.file_lines(run, name)[: idx + 1])
    snap.runs[run].pop("checkpoint.json", None)
    return f"cut {run} after record {k} (a signed checkpoint) and drop checkpoint.json"


TAMPERINGS: list[Callable[..., str]] = [
    rollback,
    edit_field,
    delete_line,
    duplicate_line,
    swap_lines,
    insert_forged,
    truncate,
    delete_file,
    swap_files,
    splice,
    rechain,
    resign,
]
