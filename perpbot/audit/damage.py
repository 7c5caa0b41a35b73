"""Naming the damage: which record is the first bad one, and what was done to it.

The chain walk only knows *where* the chain first breaks. This module looks around that
place (slowly, it only runs once per damaged log) to tell a modified record from an
inserted, deleted or reordered one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from perpbot.audit.canonical import decode, is_canonical, line_hash

Kind = Literal[
    "modified",
    "inserted",
    "deleted",
    "reordered",
    "truncated",
    "signature invalid",
    "key mismatch",
]


@dataclass(frozen=True)
class Damage:
    kind: Kind
    run: str
    detail: str
    file: str | None = None
    line: int | None = None  # 1-based line number in ``file``
    seq: int | None = None

    def describe(self) -> str:
        where = self.run
        if self.file is not None:
            where += f"/{self.file}"
        if self.line is not None:
            where += f" line {self.line}"
        if self.seq is not None:
            where += f" (seq {self.seq})"
        return f"{where}: {self.kind}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "run": self.run,
            "file": self.file,
            "line": self.line,
            "seq": self.seq,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Entry:
    """One complete line of a segment, with where it is."""

    file: str
    line: int  # 0-based index in its file
    data: bytes


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        return decode(data)
    except ValueError:
        return None


def _seq_prev(rec: dict[str, Any] | None) -> tuple[int | None, str | None]:
    if rec is None:
        return None, None
    seq, prev = rec.get("seq"), rec.get("prev")
    seq = seq if isinstance(seq, int) and not isinstance(seq, bool) else None
    return seq, prev if isinstance(prev, str) else None


def _has_seq(entries: list[Entry], start: int, seq: int) -> bool:
    marker = b'{"seq":%d,' % seq
    return any(e.data.startswith(marker) for e in entries[start:])


def classify(
    entries: list[Entry],
    at: int,
    expected_seq: int,
    expected_prev: str,
    run: str,
    signed_ok: Any,
) -> Damage:
    """The damage that makes ``entries[at]`` fail to continue the chain.

    ``signed_ok(data) -> bool`` says whether a line carries a valid signature of ours.
    """

    def damage(kind: Kind, index: int, detail: str, seq: int | None = None) -> Damage:
        e = entries[index]
        if seq is None:
            seq = _seq_prev(_parse(e.data))[0]
        return Damage(kind, run, detail, e.file, e.line + 1, seq)

    here = entries[at]
    rec = _parse(here.data)
    seq, prev = _seq_prev(rec)
    if rec is None or seq is None or prev is None:
        return damage("modified", at, "the line is not a valid log record", expected_seq)
    other_run = rec.get("run")
    if other_run is not None and other_run != run:
        return damage("inserted", at, f"a record of run {other_run} was spliced in")
    if seq == expected_seq:
        if prev == expected_prev:
            return damage("modified", at, "the record's chain fields were rewritten")
        nxt = _seq_prev(_parse(entries[at + 1].data)) if at + 1 < len(entries) else (None, None)
        if nxt == (seq, expected_prev):
            return damage("inserted", at, "a forged record was inserted here")
        if at > 0:
            before = entries[at - 1]
            before_rec = _parse(before.data)
            intact = before_rec is not None and is_canonical(before.data, before_rec)
            if not intact or not signed_ok(before.data):
                return damage(
                    "modified",
                    at - 1,
                    "the record was changed: its hash no longer matches the link stored in "
                    "the next record",
                )
        return damage("modified", at, "the record's link to the previous record was changed")
    if prev == expected_prev:  # linked to the right record, but numbered wrong
        return damage("modified", at, f"the sequence number was changed (expected {expected_seq})")
    if any(e.data == here.data for i, e in enumerate(entries) if i != at):
        return damage("inserted", at, f"a copy of the record with seq {seq}")
    if seq > expected_seq:
        if _has_seq(entries, at + 1, expected_seq):
            return damage("reordered", at, f"seq {seq} appears before seq {expected_seq}", seq)
        missing = (
            f"seq {expected_seq}"
            if seq == expected_seq + 1
            else f"seqs {expected_seq} to {seq - 1}"
        )
        return damage("deleted", at, f"{missing} missing before this record", seq)
    # seq < expected_seq: an old sequence number again
    for j in range(at - 1, -1, -1):
        if line_hash(entries[j].data) == prev and entries[j].data.startswith(
            b'{"seq":%d,' % (seq - 1)
        ):
            follows = at + 1 < len(entries) and entries[at + 1].data.startswith(
                b'{"seq":%d,"prev":"%s",' % (seq + 1, line_hash(here.data).encode())
            )
            if follows and j + 1 < at:
                return damage("inserted", j + 1, "forged records were inserted here")
            return damage("inserted", at, f"a second record with seq {seq}")
    return damage(
        "inserted", at, f"a record with seq {seq} out of place (seq {expected_seq} expected)"
    )
