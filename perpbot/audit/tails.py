"""Records no signature covers: the unsigned tail a crashed run left behind.

A run signs a checkpoint after every order-related record and every few seconds, so a run
that dies leaves at most a short tail of chained but unsigned records. Anyone who can write
the state dir could also have appended correctly chained records there after it died. So:

- a tail that the next run recovered is *bounded* by that run's signed first record (the
  number of records and the hash of the last: records appended later are damage,
  ``inserted``) and *labelled*: unverified, never the dead run's own;
- a tail nobody recovered yet (the run crashed, no run since) is unverified too;
- either way, an order-related record in it is reported (``Unverified.orders``) and makes
  verification fail: no signature vouches for that order (check it against the exchange's
  order history).

A run that is still running (its pid is alive) is left alone: its next checkpoint signs
its tail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from perpbot.audit.damage import Damage
from perpbot.audit.records import is_order_related
from perpbot.audit.verify import SegmentResult, tail_records


@dataclass(slots=True)
class Unverified:
    """A run's records after its last signature."""

    run: str
    first_seq: int
    last_seq: int
    recovered_by: str | None  # the run whose signed first record bounds them (None: nobody)
    orders: list[tuple[str, int, int, str]] = field(default_factory=list)  # file, line, seq, what

    @property
    def records(self) -> int:
        return self.last_seq - self.first_seq + 1

    def describe(self) -> str:
        span = f"seq {self.first_seq}" + (
            f"-{self.last_seq}" if self.last_seq > self.first_seq else ""
        )
        how = (
            f"recovered by run {self.recovered_by} after a crash"
            if self.recovered_by
            else "left by a run that crashed (no run has recovered them yet)"
        )
        return (
            f"{self.run} {span}: {self.records} record(s) no signature covers, {how}; "
            f"{len(self.orders)} of them order-related"
        )

    def order_lines(self) -> list[str]:
        return [
            f"{self.run}/{file} line {line} (seq {seq}): {what}: an order-related record no "
            "signed checkpoint ever covered"
            for file, line, seq, what in self.orders
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "records": self.records,
            "recovered_by": self.recovered_by,
            "orders": [{"file": f, "line": ln, "seq": s, "what": w} for f, ln, s, w in self.orders],
        }


@dataclass(slots=True)
class Tails:
    unverified: list[Unverified] = field(default_factory=list)
    damages: list[Damage] = field(default_factory=list)
    sealed: set[str] = field(default_factory=set)  # runs whose tail a later run bounded


def _recoveries(opens: dict[str, dict[str, Any]]) -> dict[str, tuple[str, int]]:
    """Crashed run -> (the run that recovered it, the last seq it bounded)."""
    out: dict[str, tuple[str, int]] = {}
    for name, rec in opens.items():
        link = rec.get("link")
        if isinstance(link, dict) and isinstance(rec.get("recovered"), dict):
            seq = link.get("seq")
            if isinstance(seq, int) and not rec["recovered"].get("missing"):
                out[str(link.get("run"))] = (name, seq)
    return out


def _what(rec: dict[str, Any]) -> str:
    if rec.get("kind") == "exchange":
        return f"{rec.get('method')} {rec.get('http') or ''} {rec.get('path') or ''}".strip()
    return f"[{rec.get('layer')}] {rec.get('action')} {rec.get('code')}"


def check_tails(
    results: dict[str, SegmentResult],
    opens: dict[str, dict[str, Any]],
    running: Callable[[dict[str, Any] | None], bool],
) -> Tails:
    out = Tails()
    recovered = _recoveries(opens)
    for name, res in results.items():
        if res.damage is not None or res.closed or res.unsigned_tail <= 0:
            continue
        by = recovered.get(name)
        if by is None and running(res.open):
            continue
        tail = tail_records(res, res.signed_through)
        bound = by[1] if by else res.last_seq
        beyond = [t for t in tail if int(t[2]["seq"]) > bound]
        if by and beyond:
            file, line, rec = beyond[0]
            out.damages.append(
                Damage(
                    "inserted",
                    name,
                    f"{len(beyond)} record(s) appended after run {by[0]} recovered this "
                    f"crashed run's log at seq {bound}",
                    file,
                    line,
                    rec.get("seq"),
                )
            )
            continue
        if by:
            out.sealed.add(name)
        u = Unverified(name, res.signed_through + 1, bound, by[0] if by else None)
        for file, line, rec in tail:
            if int(rec["seq"]) <= bound and is_order_related(rec):
                u.orders.append((file, line, int(rec["seq"]), _what(rec)))
        out.unverified.append(u)
    return out
