"""New stream connections: a budget of their own in the shared state (per IP, every process).

Binance USD-M allows 300 new WebSocket connections per 5 minutes per IP (``[limits]
ws_connections`` per ``ws_connection_window_s``), counted over a rolling window, and
refuses the handshake past that (HTTP 429). The shared state counts in fixed windows
aligned to their length (``budget.Bucket``), so each fixed window gets half the limit
(less the safety margin): any rolling window overlaps at most two fixed ones, so the
exchange never counts more than its limit, however many bots on the IP reconnect at once.
Each new connection takes one unit before it dials; without room it waits for the next
window (a ``wait`` Decision, RATE_WAIT_CONNECTIONS, when longer than a second).

A refused handshake is fed back (``refused``, from perpbot.streams.pacing): HTTP 429 (too
many new connections: the count the exchange keeps is not ours alone) cuts the budget like a
REST 429 does (``tighten_factor``, grown back by ``recover``) and holds every new connection
on the IP until its Retry-After (``REFUSED_HOLD_S`` without one); a 418 (the IP banned for
dialling on after 429s) the same; a 503 refusal holds them the same way without the cut.
The hold is kept in the shared bucket (``Bucket.tighten_until``), so every bot waits for
it (reason ``retry_after``), not only the one refused (RATE_CONNECTION_REFUSED explains it).

The user stream's connections may use the reserve (``[limits] reserve_pct``): the run needs
them to see its cancels confirmed during a kill. A 418 ban on the IP holds connections
too; a REST Retry-After (the weight budget) does not: it is not about connections.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from perpbot.events import Decision
from perpbot.ratelimit import budget
from perpbot.ratelimit.budget import MIN_FACTOR, Admission, Bucket, HostState
from perpbot.ratelimit.explain import clock, wait_sentence
from perpbot.ratelimit.host import LAYER, HostBudget
from perpbot.ratelimit.rules import window_label

WAIT_CODE = "RATE_WAIT_CONNECTIONS"
REFUSED_CODE = "RATE_CONNECTION_REFUSED"
REFUSED_HOLD_S = 5.0  # a refusal without Retry-After holds new connections this long
CUT_STATUSES = (418, 429)  # the exchange's count is fuller than ours: the budget is cut
REFUSED_STATUSES = (418, 429, 503)  # answers to a handshake that hold the next dials


def endpoint(url: str) -> str:
    """A stream URL as a sentence names it: scheme, host and path without its last segment
    (a user stream's listen key) and without the query (the combined stream names)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path.rpartition('/')[0]}"


@dataclass(slots=True, eq=False)
class ConnectionBudget:
    host: HostBudget
    limit: int  # new connections per IP per window (the exchange's rolling count)
    window_s: int

    @property
    def name(self) -> str:
        return f"connections/{self.window_s}s"

    async def admit(self, url: str, *, reducing: bool) -> None:
        """Take one new connection from the shared budget, waiting for room."""
        while True:
            now = self.host.now()
            admission: Admission = await self.host.transact(
                lambda st, now=now: self._acquire(st, now, reducing)
            )
            self.host.publish(admission.changes)
            if admission.granted:
                return
            if admission.wait_s > 1.0:
                self._explain(admission, url)
            await asyncio.sleep(admission.wait_s)

    def _bucket(self, st: HostState) -> Bucket:
        b = st.buckets.get(self.name)
        if b is None:
            b = st.buckets[self.name] = Bucket(kind="connections", window_s=self.window_s)
        b.nominal, b.source = self.limit // 2, "config"  # (what was used stays counted)
        return b

    def _acquire(self, st: HostState, now: float, reducing: bool) -> Admission:
        b = self._bucket(st)
        if b.tighten_until > now:  # a refused handshake's hold (``refused``)
            return Admission(
                wait_s=b.tighten_until - now, reason="retry_after", bucket=self.name, used=b.used
            )
        blocked, st.blocked_until = st.blocked_until, 0.0  # a REST Retry-After: not ours
        try:
            return budget.acquire(st, {self.name: 1}, now, self.host.policy, risk_reducing=reducing)
        finally:
            st.blocked_until = blocked

    async def refused(self, url: str, status: int, retry_after: float | None) -> None:
        """The exchange refused a handshake (``status``): hold every new connection on the
        IP until ``retry_after`` (``REFUSED_HOLD_S`` without one); a 429 also cuts the
        budget. Explained once per refusal that moved the hold."""
        hold = retry_after if retry_after is not None and retry_after > 0 else REFUSED_HOLD_S
        now = self.host.now()
        change: dict[str, Any] = await self.host.transact(
            lambda st: self._hold(st, now, status, hold)
        )
        if not change:
            return
        where = endpoint(url)
        given = f"its Retry-After, {retry_after:g} s" if retry_after else f"{hold:g} s"
        cut = (
            f"; the budget is cut from {change['old']} to {change['new']} new connections "
            f"per {window_label(self.window_s)} (grown back once calm)"
            if change["new"] != change["old"]
            else ""
        )
        sentence = (
            f"the exchange refused a new stream connection ({where}: HTTP {status}); new "
            f"stream connections from every bot on this IP wait until {clock(now + hold)} "
            f"({given}){cut}"
        )
        data = {"status": status, "retry_after": retry_after, "hold_s": hold, **change}
        self.host.bus.publish(Decision(LAYER, "wait", REFUSED_CODE, sentence, data))

    def _hold(self, st: HostState, now: float, status: int, hold: float) -> dict[str, Any]:
        b = self._bucket(st)
        if now + hold <= b.tighten_until:
            return {}  # another dial's refusal already holds them as long
        margin = self.host.policy.safety_margin
        old = b.cap(margin)
        if status in CUT_STATUSES and now >= b.tighten_until:  # one cut per hold
            b.factor = max(MIN_FACTOR, b.factor * self.host.policy.tighten_factor)
        b.calm_since = now  # ``budget.recover`` grows the factor back once calm
        b.tighten_until = now + hold
        return {"bucket": self.name, "old": old, "new": b.cap(margin), "until": now + hold}

    def status(self, st: HostState, now: float) -> dict[str, Any]:
        """The ``connections`` part of the rate section (`perpbot status`)."""
        b = st.buckets.get(self.name)
        if b is None:
            return {}
        current = b.start <= now < b.start + b.window_s
        return {
            "window": window_label(self.window_s),
            "used": b.used if current else 0,
            "limit": b.cap(self.host.policy.safety_margin),
            "nominal": b.nominal,
            "factor": round(b.factor, 4),
            "held_for_s": round(max(0.0, b.tighten_until - now), 3),
        }

    def _explain(self, admission: Admission, url: str) -> None:
        what = f"a new stream connection ({endpoint(url)})"
        sentence = wait_sentence(
            reason=admission.reason,
            what=what,
            wait_s=admission.wait_s,
            bucket=admission.bucket,
            used=admission.used,
            cap=admission.cap,
            now=self.host.now(),
        )
        data = {
            "wait_s": round(admission.wait_s, 3),
            "reason": admission.reason,
            "bucket": admission.bucket,
            "used": admission.used,
            "limit": admission.cap,
        }
        self.host.bus.publish(Decision(LAYER, "wait", WAIT_CODE, sentence, data))
