"""Verifying one run's segment: the chain through every file, and every signature.

The walk checks each line's chain prefix and hashes it (``perpbot.audit.chain``); only
signed lines (the open record, checkpoints, the close) are parsed and their Ed25519
signature checked. At the first line that breaks the chain, ``perpbot.audit.damage`` names
the damage. What the segment's records cannot tell alone (a truncated tail, a deleted last
file) is checked against the checkpoints kept outside the log by ``perpbot.audit.tree``.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbot.audit.canonical import decode, line_hash
from perpbot.audit.chain import ChainPosition, follow
from perpbot.audit.damage import Damage, Entry, Kind, classify
from perpbot.audit.segments import file_name, file_number, read_file, segment_files
from perpbot.audit.signing import Verifier, fingerprint
from perpbot.errors import RuntimeFailure


@dataclass
class SegmentResult:
    run: str
    dir: Path
    files: list[str] = field(default_factory=list)
    last_seq: int = -1
    last_hash: str = ""
    last_file: str | None = None
    closed: bool = False
    close_reason: str | None = None
    rotate_pending: bool = False  # the last record promises a next file
    torn: tuple[str, int] | None = None  # (file, 1-based line) of an incomplete last line
    signed_through: int = -1
    open: dict[str, Any] | None = None
    key: str | None = None  # the fingerprint the segment was checked against
    damage: Damage | None = None
    hashes: dict[int, str] = field(default_factory=dict)  # wanted seq -> line hash
    found: dict[str, int] = field(default_factory=dict)  # a sought signed line's hash -> seq
    gaps: list[dict[str, Any]] = field(default_factory=list)  # signed gap records (audit.gap)

    @property
    def records(self) -> int:
        return self.last_seq + 1

    @property
    def unsigned_tail(self) -> int:
        return self.last_seq - self.signed_through


class _Walk:
    """The state of one segment walk (the signed-line hook needs somewhere to write)."""

    def __init__(
        self, res: SegmentResult, verifier: Verifier | None, find: frozenset[str] = frozenset()
    ) -> None:
        self.res = res
        self.verifier = verifier
        self.find = find
        self.file_index = 0
        self.file = ""
        self.closed_at: tuple[int, int] | None = None
        self.rotate_at: tuple[int, int] | None = None

    def fail(self, kind: Kind, line: int, detail: str, seq: int | None) -> bool:
        self.res.damage = Damage(kind, self.res.run, detail, self.file, line + 1, seq)
        return False

    def on_signed(self, i: int, line: bytes, digest: str) -> bool:
        try:
            rec = decode(line)
        except ValueError:
            return self.fail("modified", i, "the signed record is not valid JSON", None)
        seq = rec.get("seq")
        kind = rec.get("kind")
        if rec.get("run") != self.res.run:
            return self.fail(
                "modified", i, f"the record belongs to run {rec.get('run')!r}, not this one", seq
            )
        if kind == "open":
            if seq != 0:
                return self.fail("inserted", i, "a second open record", seq)
            try:
                pub = base64.b64decode(str(rec.get("pub")), validate=True)
            except (binascii.Error, ValueError):
                pub = b""
            if len(pub) != 32 or rec.get("key") != fingerprint(pub):
                return self.fail("modified", i, "the open record's public key was altered", seq)
            if self.verifier is None:
                self.verifier = Verifier(pub)
            elif self.verifier.fingerprint != rec.get("key"):
                return self.fail(
                    "key mismatch",
                    i,
                    f"the log is signed by key {rec.get('key')}, expected "
                    f"{self.verifier.fingerprint}",
                    seq,
                )
        elif self.verifier is None or rec.get("key") != self.verifier.fingerprint:
            expected = self.verifier.fingerprint if self.verifier else "the open record's key"
            return self.fail(
                "key mismatch", i, f"signed by key {rec.get('key')}, expected {expected}", seq
            )
        if not self.verifier.check_line(line):
            return self.fail(
                "signature invalid",
                i,
                "the signature does not match: this record, or one before it since the "
                "previous signature, was altered and the chain recomputed",
                seq,
            )
        if isinstance(seq, int):
            self.res.signed_through = seq
            if digest in self.find:
                self.res.found[digest] = seq
        if kind == "close":
            self.closed_at = (self.file_index, i)
            self.res.closed = True
            self.res.close_reason = rec.get("reason")
        elif kind == "checkpoint" and rec.get("reason") == "rotate":
            self.rotate_at = (self.file_index, i)
        elif kind == "gap":
            self.res.gaps.append(
                {k: rec.get(k) for k in ("seq", "reason", "since", "ts", "requests", "other")}
            )
        return True


def _entries(files: list[Path]) -> list[Entry]:
    out: list[Entry] = []
    for path in files:
        for i, data in enumerate(read_file(path).lines):
            out.append(Entry(path.name, i, data))
    return out


def _missing_file(files: list[Path]) -> str | None:
    numbers = [file_number(f) or 0 for f in files]
    for expected, got in enumerate(numbers, start=1):
        if got != expected:
            return file_name(expected)
    return None


def verify_segment(
    segment_dir: Path,
    verifier: Verifier | None,
    wanted: Iterable[int] = (),
    find: Iterable[str] = (),
) -> SegmentResult:
    """Walk a segment; ``verifier`` None trusts the key its open record names. ``wanted``:
    seqs whose line hash to keep; ``find``: hashes of signed lines to look for."""
    try:
        return _verify_segment(segment_dir, verifier, wanted, find)
    except RuntimeFailure as exc:  # a compressed file that no longer decompresses
        res = SegmentResult(run=segment_dir.name, dir=segment_dir)
        res.damage = Damage("modified", res.run, str(exc))
        return res


def _verify_segment(
    segment_dir: Path,
    verifier: Verifier | None,
    wanted: Iterable[int],
    find: Iterable[str],
) -> SegmentResult:
    res = SegmentResult(run=segment_dir.name, dir=segment_dir)
    files = segment_files(segment_dir)
    res.files = [f.name for f in files]
    wanted_set = set(wanted)
    walk = _Walk(res, verifier, frozenset(find))
    if not files:
        res.damage = Damage("truncated", res.run, "the run's log files are gone")
        return res
    missing = _missing_file(files)
    pos: ChainPosition | None = None
    final = (-1, -1)  # (file index, line index) of the last complete line
    offset = 0  # index of the current file's first line among all lines
    for k, path in enumerate(files):
        walk.file_index, walk.file = k, path.name
        fl = read_file(path)
        if pos is None:
            first = _first_record(fl.lines)
            if first is None or first.get("seq") != 0 or first.get("kind") != "open":
                res.damage = _bad_start(res.run, path.name, first, missing, _entries(files))
                return res
            res.open = first
            pos = ChainPosition(0, str(first.get("prev")))
        start_seq = pos.seq
        stop = follow(fl.lines, 0, pos, walk.on_signed)
        for s in wanted_set:
            if start_seq <= s < pos.seq:
                res.hashes[s] = line_hash(fl.lines[s - start_seq])
        if pos.seq > start_seq:
            res.last_file = path.name
        if res.damage is not None:
            break
        if stop < len(fl.lines):
            signed_ok = walk.verifier.check_line if walk.verifier else (lambda _d: False)
            res.damage = classify(
                _entries(files), offset + stop, pos.seq, pos.prev, res.run, signed_ok
            )
            if missing and res.damage.kind == "deleted":
                res.damage = Damage(
                    "deleted",
                    res.run,
                    f"{res.damage.detail} (file {missing} is missing)",
                    res.damage.file,
                    res.damage.line,
                    res.damage.seq,
                )
            break
        last = k == len(files) - 1
        if walk.closed_at is not None and (
            walk.closed_at != (k, len(fl.lines) - 1) or fl.partial is not None or not last
        ):
            where = (k, walk.closed_at[1] + 1) if walk.closed_at[0] == k else (k + 1, 0)
            res.damage = Damage(
                "inserted",
                res.run,
                "a record after the run's close record",
                files[min(where[0], len(files) - 1)].name,
                where[1] + 1,
                pos.seq if walk.closed_at[0] == k else None,
            )
            break
        if fl.partial is not None:
            if not last:
                res.damage = Damage(
                    "modified",
                    res.run,
                    "an incomplete line in the middle of the log",
                    path.name,
                    len(fl.lines) + 1,
                    pos.seq,
                )
                break
            res.torn = (path.name, len(fl.lines) + 1)
        offset += len(fl.lines)
        final = (k, len(fl.lines) - 1)
    res.key = walk.verifier.fingerprint if walk.verifier else None
    if pos is not None:
        res.last_seq, res.last_hash = pos.seq - 1, pos.prev
    if res.damage is None and walk.rotate_at is not None:
        res.rotate_pending = walk.rotate_at == final
    return res


def _first_record(lines: list[bytes]) -> dict[str, Any] | None:
    if not lines:
        return None
    try:
        return decode(lines[0])
    except ValueError:
        return None


def _bad_start(
    run: str, file: str, first: dict[str, Any] | None, missing: str | None, entries: list[Entry]
) -> Damage:
    """The damage when a segment does not start with its open record."""
    seq = first.get("seq") if first else None
    if missing is not None:
        return Damage("deleted", run, f"file {missing} is missing", file, 1, seq)
    if first is None and not entries:
        return Damage("truncated", run, "the log holds no complete record", file, 1)
    if first is None:
        return Damage("modified", run, "the first line is not a valid record", file, 1)
    if any(e.data == entries[0].data for e in entries[1:]):
        return Damage("inserted", run, f"a copy of the record with seq {seq}", file, 1, seq)
    if isinstance(seq, int) and seq > 0:
        if any(e.data.startswith(b'{"seq":0,') for e in entries[1:]):
            return Damage("reordered", run, f"seq {seq} comes before the open record", file, 1, seq)
        return Damage(
            "deleted", run, f"the start of the run's log is missing (seq {seq} first)", file, 1, seq
        )
    return Damage("modified", run, "the first record is not the run's open record", file, 1, seq)


def tail_records(res: SegmentResult, after: int) -> list[tuple[str, int, dict[str, Any]]]:
    """(file, 1-based line, record) of each complete record with seq > ``after``, read
    back from the end of the segment (an unsigned tail is short: at most
    ``checkpoint_every`` records, or what someone appended)."""
    out: list[tuple[str, int, dict[str, Any]]] = []
    for path in reversed(segment_files(res.dir)):
        try:
            lines = read_file(path).lines
        except RuntimeFailure:
            return out[::-1]
        for i in range(len(lines) - 1, -1, -1):
            try:
                rec = decode(lines[i])
            except ValueError:
                continue
            seq = rec.get("seq")
            if not isinstance(seq, int) or seq <= after:
                return out[::-1]
            out.append((path.name, i + 1, rec))
    return out[::-1]
