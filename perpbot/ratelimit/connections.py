"""New stream connections: a budget of their own in the shared state (per IP, every process).

Binance USD-M allows 300 new WebSocket connections per 5 minutes per IP (``[limits]
ws_connections`` per ``ws_connection_window_s``), counted over a rolling window, and
refuses the handshake past that (HTTP 429). The shared state counts in fixed windows
aligned to their length (``budget.Bucket``), so each fixed window gets half the limit
(less the safety margin): any rolling window overlaps at most two fixed ones, so the
exchange never counts more than its limit, however many bots on the IP reconnect at once.
Each new connection takes one unit before it dials; without room it waits for the next
window (a ``wait`` Decision, RATE_WAIT_CONNECTIONS, when longer than a second).

The user stream's connections may use the reserve (``[limits] reserve_pct``): the run needs
them to see its cancels confirmed during a kill. A 418 ban on the IP holds connections
too; a REST Retry-After (the weight budget) does not: it is not about connections.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from perpbot.events import Decision
from perpbot.ratelimit import budget
from perpbot.ratelimit.budget import Admission, Bucket, HostState
from perpbot.ratelimit.explain import wait_sentence
from perpbot.ratelimit.host import LAYER, HostBudget

WAIT_CODE = "RATE_WAIT_CONNECTIONS"


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

    def _acquire(self, st: HostState, now: float, reducing: bool) -> Admission:
        b = st.buckets.get(self.name)
        if b is None:
            b = st.buckets[self.name] = Bucket(kind="connections", window_s=self.window_s)
        b.nominal, b.source = self.limit // 2, "config"  # (what was used stays counted)
        blocked, st.blocked_until = st.blocked_until, 0.0  # a REST Retry-After: not ours
        try:
            return budget.acquire(st, {self.name: 1}, now, self.host.policy, risk_reducing=reducing)
        finally:
            st.blocked_until = blocked

    def _explain(self, admission: Admission, url: str) -> None:
        what = f"a new stream connection ({url.split('?', 1)[0].rsplit('/', 1)[0]})"
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
