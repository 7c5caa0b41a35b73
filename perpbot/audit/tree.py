"""Verifying every log under a logs dir: each segment, and what holds them together.

Besides each segment's own chain and signatures, these things are checked here:

- each run's ``checkpoint.json`` (a log that ends before its checkpoint was truncated);
- the chain head kept in the keyring and in ``audit/head.json`` (catches truncating or
  deleting the newest run even together with its ``checkpoint.json``);
- the link from each run's first record to the record it continues (an older run cut short
  or deleted breaks the link, unless a signed retention record says it was pruned);
- what anchors the head outside the state dir (the keyring's copy, or a head exported
  with `perpbot log head` and given as ``head``): without one, cutting the newest records,
  deleting the newest run or rolling the whole log back cannot be detected, and the report
  says so (``anchor`` None);
- records no signature covers: a crashed run's unsigned tail, bounded and labelled
  "recovered, unverified" by the run that continued the chain, or not recovered yet
  (``perpbot.audit.tails``).

External checkpoints are read *before* the logs, so a bot writing while we verify cannot
make its log look shorter than its checkpoint.
"""

from __future__ import annotations

import base64
import binascii
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbot.audit.canonical import decode, line_hash
from perpbot.audit.checkpoints import Checkpoint, load_segment_checkpoint
from perpbot.audit.damage import Damage
from perpbot.audit.recovery import LIVE_WRITERS
from perpbot.audit.segments import is_segment, list_segments, read_file, segment_files
from perpbot.audit.signing import Verifier, fingerprint
from perpbot.audit.tails import Unverified, check_tails
from perpbot.audit.verify import SegmentResult, verify_segment
from perpbot.errors import RuntimeFailure
from perpbot.procs import pid_alive

UNANCHORED = (
    "the chain head has no copy outside this state dir (no OS keyring holds it and no "
    "--head was given): cutting off the newest records, deleting the newest run(s) or "
    "rolling the whole log back to an older valid copy would verify as intact"
)


@dataclass
class TreeReport:
    segments: list[SegmentResult] = field(default_factory=list)
    damages: list[Damage] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    key: str | None = None  # the fingerprint logs were checked against (None: their own)
    anchor: str | None = None  # what anchored the head outside the state dir (None: nothing)
    unverified: list[Unverified] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)  # "pruned before X, anchored by Y"
    whole: bool = False  # every run of a logs folder was verified

    @property
    def ok(self) -> bool:
        """No damage and no order record that no signature covers."""
        return not self.damages and not self.unverified_orders

    @property
    def empty(self) -> bool:
        return not self.segments

    @property
    def unverified_orders(self) -> int:
        return sum(len(u.orders) for u in self.unverified)

    @property
    def records(self) -> int:
        return sum(max(s.records, 0) for s in self.segments)

    @property
    def gaps(self) -> list[dict[str, Any]]:
        """Signed gap records: requests that went out while the log could not write."""
        return [{"run": s.run, **g} for s in self.segments for g in s.gaps]

    @property
    def unrecorded_requests(self) -> int:
        return sum(int(g.get("requests") or 0) for g in self.gaps)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "key": self.key,
            "runs": len(self.segments),
            "records": self.records,
            "files": sum(len(s.files) for s in self.segments),
            "damage": [d.to_dict() for d in self.damages],
            "notes": self.notes,
            "anchor": self.anchor,
            "anchored": self.anchor is not None,
            "unverified": [u.to_dict() for u in self.unverified],
            "pruned": self.pruned,
            "empty": self.empty,
            "gaps": self.gaps,
        }


@dataclass
class _Open:
    """A segment's first record, read without verifying the segment."""

    run: str
    record: dict[str, Any]
    line: bytes


def _read_open(segment: Path) -> _Open | None:
    files = segment_files(segment)
    if not files:
        return None
    try:
        lines = read_file(files[0]).lines
    except RuntimeFailure:  # a damaged compressed file: the segment's walk reports it
        return None
    if not lines:
        return None
    try:
        rec = decode(lines[0])
    except ValueError:
        return None
    return _Open(segment.name, rec, lines[0]) if rec.get("kind") == "open" else None


def _open_trusted(op: _Open, verifier: Verifier | None) -> bool:
    """Whether an open record (of a segment not walked here) is genuinely signed."""
    try:
        pub = base64.b64decode(str(op.record.get("pub")), validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(pub) != 32:
        return False
    v = verifier or Verifier(pub)
    return fingerprint(pub) == v.fingerprint and v.check_line(op.line)


def _hash_at(segment: Path, seq: int) -> str | None:
    """The hash of record ``seq`` found by a plain scan (for a segment not walked here)."""
    marker = b'{"seq":%d,' % seq
    for path in segment_files(segment):
        try:
            lines = read_file(path).lines
        except RuntimeFailure:
            return None
        for line in lines:
            if line.startswith(marker):
                return line_hash(line)
    return None


def _running(open_rec: dict[str, Any] | None) -> bool:
    if not open_rec:
        return False
    if open_rec.get("pid") == os.getpid():  # this process: is its writer still open?
        run = open_rec.get("run")
        return any(w.ctx.run == run and not w.closed for w in list(LIVE_WRITERS))
    return pid_alive(open_rec.get("pid"), open_rec.get("host") or "?")


class _Tree:
    def __init__(
        self,
        root: Path,
        verifier: Verifier | None,
        runs: list[str] | None,
        heads: list[tuple[str, dict[str, Any]]],
        head: str | None = None,
    ) -> None:
        self.root = root
        self.verifier = verifier
        self.head = head
        self.report = TreeReport(key=verifier.fingerprint if verifier else None)
        single = is_segment(root)
        self.complete = not single  # every segment is here: a missing one is damage
        self.whole = self.complete and not runs  # ... and every one is being verified
        self.report.whole = self.whole
        self.all = [root] if single else list_segments(root)
        by_name = {p.name: p for p in self.all}
        self.by_name = by_name
        self.targets = [by_name[r] for r in runs] if runs else list(self.all)
        self.target_names = {p.name for p in self.targets}
        self.opens = {p.name: op for p in self.all if (op := _read_open(p)) is not None}
        # pruned run -> (its last record as the pruning recorded it, the run that recorded it)
        self.pruned_by: dict[str, tuple[dict[str, Any], str]] = {
            str(e.get("run")): (e, name)
            for name, op in self.opens.items()
            for e in (op.record.get("pruned") or [])
            if isinstance(e, dict)
        }
        self.pruned = set(self.pruned_by)
        # external evidence first (see the module docstring)
        self.checkpoints = {p.name: load_segment_checkpoint(p) for p in self.targets}
        self.heads = [(src, Checkpoint.from_dict(data)) for src, data in heads]
        self.links = [
            (name, op) for name, op in self.opens.items() if isinstance(op.record.get("link"), dict)
        ]

    def damage(self, d: Damage) -> None:
        self.report.damages.append(d)

    def wanted(self) -> dict[str, set[int]]:
        want: dict[str, set[int]] = defaultdict(set)
        for name, (cp, _) in self.checkpoints.items():
            if cp is not None:
                want[name].add(cp.seq)
        for _, cp in self.heads:
            if cp is not None:
                want[cp.run].add(cp.seq)
        for _, op in self.links:
            link = op.record["link"]
            if isinstance(link.get("seq"), int):
                want[str(link.get("run"))].add(link["seq"])
        return want

    def run(self) -> TreeReport:
        want = self.wanted()
        results: dict[str, SegmentResult] = {}
        find = (self.head,) if self.head else ()
        for seg in self.targets:
            res = verify_segment(seg, self.verifier, want.get(seg.name, ()), find)
            results[seg.name] = res
            self.report.segments.append(res)
            if res.damage is not None:
                self.damage(res.damage)
        sealed: set[str] = set()
        for res in results.values():
            if res.damage is None:
                self._check_external(res)
        self._check_links(results, sealed)
        self._check_heads(results)
        self._check_exported_head(results)
        self._check_pruned()
        tails = check_tails(results, {n: op.record for n, op in self.opens.items()}, _running)
        self.report.unverified = tails.unverified
        for d in tails.damages:
            self.damage(d)
        sealed |= tails.sealed
        self._notes(results, sealed)
        if self.verifier is None:
            self.report.notes.append(
                "no signing key on this machine and no --public-key: signatures were checked "
                "against the key each log names; pass --public-key to rule out re-signing"
            )
        return self.report

    def _against(self, res: SegmentResult, seq: int, digest: str, what: str) -> Damage | None:
        if seq > res.last_seq:
            return Damage(
                "truncated",
                res.run,
                f"the log ends at seq {res.last_seq} but {what} says seq {seq} was written",
                res.last_file,
                None,
                res.last_seq,
            )
        if res.hashes.get(seq) != digest:
            return Damage(
                "modified",
                res.run,
                f"record seq {seq} is not the one {what} names",
                None,
                None,
                seq,
            )
        return None

    def _check_external(self, res: SegmentResult) -> None:
        cp, existed = self.checkpoints.get(res.run, (None, False))
        if existed and cp is None:
            self.damage(Damage("modified", res.run, "checkpoint.json is not a valid checkpoint"))
        elif cp is not None:
            if cp.key != res.key:
                self.damage(
                    Damage("key mismatch", res.run, f"checkpoint.json is signed by {cp.key}")
                )
            elif cp.run != res.run or not cp.valid(_verifier_for(res, self.verifier)):
                self.damage(Damage("signature invalid", res.run, "checkpoint.json was altered"))
            elif (d := self._against(res, cp.seq, cp.hash, "its checkpoint.json")) is not None:
                self.damage(d)
                return
        # (a bot still writing may have opened the next file since its files were listed)
        if res.rotate_pending and len(segment_files(res.dir)) <= len(res.files):
            self.damage(
                Damage(
                    "truncated",
                    res.run,
                    f"the log was rotated after {res.last_file} but the next file is missing",
                    res.last_file,
                    None,
                    res.last_seq,
                )
            )

    def _check_links(self, results: dict[str, SegmentResult], sealed: set[str]) -> None:
        for name, op in self.links:
            link = op.record["link"]
            target, seq = str(link.get("run")), link.get("seq")
            if not isinstance(seq, int):
                continue
            if target not in self.target_names and name not in self.target_names:
                continue
            if name not in self.target_names and not _open_trusted(op, self.verifier):
                continue  # that segment's own verification reports it
            what = f"run {name}'s first record"
            if target in results:
                res = results[target]
                if res.damage is not None:
                    continue
                d = self._against(res, seq, str(op.record.get("prev")), what)
                if d is not None:
                    self.damage(d)
                elif seq == res.last_seq:
                    sealed.add(target)
            elif target in self.by_name:
                if _hash_at(self.by_name[target], seq) != op.record.get("prev"):
                    self.damage(
                        Damage("modified", target, f"record seq {seq} is not the one {what} names")
                    )
            elif not self.complete:
                self.report.notes.append(
                    f"{name}: not checked: run {target}, which it continues, is not here"
                )
            elif target not in self.pruned and target != name:
                self.damage(
                    Damage(
                        "deleted",
                        target,
                        f"the log of run {target} is missing ({what} links to it)",
                    )
                )

    def _check_heads(self, results: dict[str, SegmentResult]) -> None:
        for source, cp in self.heads:
            where = f"the chain head in the {source}"
            if cp is None:
                self.damage(Damage("modified", "(state dir)", f"{where} is not a valid checkpoint"))
                continue
            expected = self.verifier.fingerprint if self.verifier else cp.key
            if cp.key != expected:
                self.damage(Damage("key mismatch", cp.run, f"{where} is signed by {cp.key}"))
                continue
            v = self.verifier or _verifier_of(self.opens.get(cp.run))
            if v is None or not cp.valid(v):
                self.damage(Damage("signature invalid", cp.run, f"{where} was altered"))
                continue
            if cp.run in results:
                res = results[cp.run]
                if res.damage is None and (d := self._against(res, cp.seq, cp.hash, where)):
                    self.damage(d)
                elif res.damage is None and source == "keyring":
                    self._anchored("the OS keyring's copy of the head", cp.run, cp.seq, results)
            elif source == "keyring" and not self.whole and cp.run in self.by_name:
                self.report.anchor = self.report.anchor or (
                    f"the OS keyring's copy of the head (run {cp.run} seq {cp.seq}, outside "
                    "the runs verified here: verify the whole log to compare them)"
                )
            elif self.whole and cp.run not in self.by_name and cp.run not in self.pruned:
                self.damage(
                    Damage(
                        "deleted", cp.run, f"the log of run {cp.run} is missing ({where} names it)"
                    )
                )

    def _anchored(self, what: str, run: str, seq: int, results: dict[str, SegmentResult]) -> None:
        """Record the anchor that was checked, and how much was written after it."""
        res = results[run]
        after = res.last_seq - seq
        opened = res.open.get("ts") if res.open else None
        for other in results.values():
            ts = other.open.get("ts") if other.open else None
            if other.run != run and isinstance(ts, int | float) and isinstance(opened, int | float):
                after += other.records if ts > opened else 0
        text = f"{what} (run {run} seq {seq})"
        if after > 0:
            text += (
                f"; {after} record(s) written after it are anchored only by files in the state dir"
            )
        if self.report.anchor is None or what.startswith("--head"):
            self.report.anchor = text

    def _check_exported_head(self, results: dict[str, SegmentResult]) -> None:
        if not self.head:
            return
        for res in results.values():
            if self.head in res.found:
                self._anchored(f"--head {self.head[:16]}", res.run, res.found[self.head], results)
                return
        for run, (entry, by) in self.pruned_by.items():
            if entry.get("hash") == self.head:
                self.report.anchor = (
                    f"--head {self.head[:16]} (the last record of run {run}, pruned since: "
                    f"recorded by run {by})"
                )
                return
        self.damage(
            Damage(
                "truncated",
                "(log)",
                f"the exported head {self.head} is not in the log: its newest records were "
                "cut off, its newest run(s) deleted, or it was rolled back to an older copy",
            )
        )

    def _check_pruned(self) -> None:
        """Say where pruning cut the chain and which signed record vouches for it."""
        for name, op in self.links:
            link = op.record["link"]
            target = str(link.get("run"))
            if target in self.by_name or target not in self.pruned_by:
                continue
            entry, by = self.pruned_by[target]
            same_seq = entry.get("seq") == link.get("seq")
            if same_seq and entry.get("hash") != op.record.get("prev"):
                self.damage(
                    Damage(
                        "modified",
                        name,
                        f"its first record links to run {target} seq {link.get('seq')}, "
                        f"but run {by}'s signed prune record names another record there",
                    )
                )
                continue
            self.report.pruned.append(
                f"pruned before run {name}: it continues run {target} seq {link.get('seq')}, "
                f"pruned; anchored by the signed checkpoint of what was pruned in run {by}'s "
                f"open record (last record of {target}: seq {entry.get('seq')}, "
                f"hash {str(entry.get('hash'))[:16]})"
            )

    def _notes(self, results: dict[str, SegmentResult], sealed: set[str]) -> None:
        for name, res in results.items():
            if res.damage is not None:
                continue
            if res.torn is not None:
                self.report.notes.append(
                    f"{name}/{res.torn[0]} line {res.torn[1]}: torn tail (an incomplete last "
                    "record from a crash, not tampering; ignored)"
                )
            if not res.closed and name not in sealed and res.unsigned_tail > 0:
                state = "still running" if _running(res.open) else "crashed?"
                self.report.notes.append(
                    f"{name}: the log was not closed ({state}); its last {res.unsigned_tail} "
                    "record(s) are chained but not yet signed"
                )
            elif not res.closed and name not in sealed and not _running(res.open):
                self.report.notes.append(
                    f"{name}: the log was not closed (crashed, killed, or its disk was full): "
                    f"it vouches for the run's requests up to seq {res.last_seq} only"
                )


def _verifier_for(res: SegmentResult, verifier: Verifier | None) -> Verifier:
    if verifier is not None:
        return verifier
    v = _verifier_of(None if res.open is None else _Open(res.run, res.open, b""))
    assert v is not None
    return v


def _verifier_of(op: _Open | None) -> Verifier | None:
    if op is None:
        return None
    try:
        pub = base64.b64decode(str(op.record.get("pub")), validate=True)
    except (binascii.Error, ValueError):
        return None
    return Verifier(pub) if len(pub) == 32 else None


def verify_tree(
    root: Path,
    *,
    verifier: Verifier | None,
    runs: list[str] | None = None,
    heads: list[tuple[str, dict[str, Any]]] | None = None,
    head: str | None = None,
) -> TreeReport:
    """Verify the segments under ``root`` (a logs dir or one run's folder); ``head``: the
    hash of an exported chain head (`perpbot log head`) the log must still hold."""
    return _Tree(root, verifier, runs, heads or [], head).run()
