"""The HTTP hooks: charge every real request, learn from every response.

``before_http`` runs inside ccxt just before a request leaves. It charges the request its
Binance weight and order count (``perpbot.weights.request_cost``) against the shared budget:
from this process's small lease when it covers the cost (no shared transaction), otherwise
in a transaction that also takes the next lease. When there is no room it raises
``RateWait`` before anything is sent (short waits, under half a second, happen in place).

``after_http`` reads the response: a 429 or 418 goes into the shared state at once (the
next request of any process must see it), usage headers correct the shared estimate
upwards (at once near the cap, else at most every 50 ms), and accepted responses raise the
level the exchange is known to accept while a bucket is probing.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from perpbot.client.ratelimit import budget
from perpbot.client.ratelimit.explain import too_heavy_sentence
from perpbot.client.ratelimit.host import HostBudget
from perpbot.client.ratelimit.rules import Kind, retry_after_s, usage_headers
from perpbot.client.ratelimit.rules_keeper import RulesKeeper
from perpbot.client.ratelimit.state import Change, Grant, HostState
from perpbot.client.request import HttpRecord, Request
from perpbot.client.waits import Interrupter
from perpbot.errors import RuntimeFailure
from perpbot.weights import request_cost

IN_HOOK_MAX_S = 0.5  # longer waits leave ccxt (RateWait) so the signature stays fresh
CORRECTION_EVERY_S = 0.05  # header corrections far from the cap are batched this much
NEAR_CAP = 0.9  # from here on every correction is written at once
DEFAULT_BAN_S = 60.0
MAX_IN_FLIGHT = 10_000  # bookkeeping kept for requests still waiting for a response
Usage = list[tuple[Kind, int, int]]
_WEIGHT_PARAMS = re.compile(r"(?:^|&)(symbol|limit)=([^&]*)")


class RateWait(Exception):
    """Raised before a request leaves: wait ``grant.wait_s``, then send it anew.

    ``not_sent`` tells the transport (and any retry policy) that nothing reached the
    exchange, so resending cannot duplicate anything.
    """

    not_sent = True

    def __init__(self, grant: Grant, what: str) -> None:
        super().__init__(f"{what}: held back {grant.wait_s:.3f} s ({grant.reason})")
        self.grant = grant
        self.what = what


@dataclass
class _Sent:
    starts: dict[str, float]
    levels: dict[str, int]
    probes: list[str]


@dataclass
class _Lease:
    start: float
    units: int


class HttpBudget:
    def __init__(self, host: HostBudget, rules: RulesKeeper, interrupter: Interrupter) -> None:
        self.host = host
        self.rules = rules
        self.interrupter = interrupter
        self._sent: dict[int, _Sent] = {}
        self._leases: dict[str, _Lease] = {}
        self._corrected_at = 0.0
        self._charges_of: HostState | None = None
        self._charges: dict[tuple[int, int], dict[str, int]] = {}

    # -- before -----------------------------------------------------------------------------
    async def before_http(self, record: HttpRecord, request: Request | None) -> None:
        weight, orders = request_cost(record.http_method, record.path, _query(record.url))
        # the rules re-read itself must pass while rules are due; everything else waits
        every = None if record.path.endswith("/exchangeInfo") else self.rules.every
        waited = 0.0
        while True:
            now = self.host.now()
            sent = self._from_lease(weight, orders, now, every)
            if sent is not None:
                self._remember(record, sent)
                return
            grant: Grant = self.host.txn(
                lambda st, now=now: self._acquire(st, weight, orders, now, every)
            )
            self.host.publish(grant.changes)
            # the transaction gave back what our leases had not spent: they are void now
            self._leases = {n: _Lease(grant.starts[n], u) for n, u in grant.leased.items()}
            if grant.granted:
                self._remember(record, _Sent(grant.starts, grant.levels, grant.probes))
                return
            if grant.reason == "too_heavy":
                _unrecord(record, request)
                sentence = too_heavy_sentence(record.http_method, record.path, grant)
                raise RuntimeFailure(sentence, code="RATE_REQUEST_TOO_HEAVY")
            if grant.wait_s <= 0 or waited + grant.wait_s > IN_HOOK_MAX_S:
                _unrecord(record, request)
                raise RateWait(grant, f"{record.http_method} {record.path}")
            waited += grant.wait_s
            await self.interrupter.sleep(grant.wait_s)

    def _from_lease(
        self, weight: int, orders: int, now: float, every: float | None
    ) -> _Sent | None:
        """Spend from this process's lease: no shared transaction, only a blocked check."""
        m = self.host.mirror
        if budget.refresh_due(m, now, every):
            return None
        if self._charges_of is not m:  # the bucket set may have changed: forget the cache
            self._charges_of, self._charges = m, {}
        charges = self._charges.get((weight, orders))
        if charges is None:
            charges = budget.charges_for(weight, orders, m, self.host.key_id)
            self._charges[(weight, orders)] = charges
        starts: dict[str, float] = {}
        for name, amount in charges.items():
            b, lease = m.buckets.get(name), self._leases.get(name)
            if b is None or b.safe is not None or lease is None or lease.units < amount:
                return None
            if lease.start != math.floor(now / b.window_s) * b.window_s:
                return None
            starts[name] = lease.start
        if self.host.store.blocked_until() > now:  # another process met a 429 or a ban
            return None
        for name, amount in charges.items():
            self._leases[name].units -= amount
        return _Sent(starts, {}, [])

    def _acquire(
        self, st: HostState, weight: int, orders: int, now: float, every: float | None
    ) -> Grant:
        budget.ensure_key(st, self.host.key_id)
        for name, lease in self._leases.items():  # give back what the lease did not spend
            b = st.buckets.get(name)
            if b is not None and b.start == lease.start and lease.units > 0:
                b.used = max(0, b.used - lease.units)
        charges = budget.charges_for(weight, orders, st, self.host.key_id)
        return budget.acquire(st, charges, now, self.host.policy, every, lease=True)

    def _remember(self, record: HttpRecord, sent: _Sent) -> None:
        if len(self._sent) >= MAX_IN_FLIGHT:  # records whose response never came: drop
            for key in list(self._sent)[: MAX_IN_FLIGHT // 2]:
                del self._sent[key]
        self._sent[id(record)] = sent

    # -- after ------------------------------------------------------------------------------
    def after_http(self, record: HttpRecord, request: Request | None) -> None:
        sent = self._sent.pop(id(record), None)
        status = record.status or 0
        usage = usage_headers(record.headers)
        now = self.host.now()
        if status in (418, 429):
            self._pushback(record, sent, usage, now)
            return
        if (sent is None and not usage) or not self._needs_write(usage, sent, now):
            return
        self.host.txn(lambda st: self._observe(st, usage, sent, status < 400, now))
        self._corrected_at = now

    def _needs_write(self, usage: Usage, sent: _Sent | None, now: float) -> bool:
        if sent is not None and sent.probes:
            return True
        policy, key_id = self.host.policy, self.host.key_id
        for kind, window_s, used in usage:
            b = self.host.mirror.buckets.get(budget.bucket_name(kind, window_s, key_id))
            if b is None:
                continue
            if b.safe is not None and used > b.safe:
                return True
            known = b.used if b.start == math.floor(now / b.window_s) * b.window_s else 0
            if used <= known:
                continue
            cap = b.cap(policy.safety_margin)
            if (cap is not None and used >= NEAR_CAP * cap) or (
                now - self._corrected_at >= CORRECTION_EVERY_S
            ):
                return True
        return False

    def _observe(
        self, st: HostState, usage: Usage, sent: _Sent | None, accepted: bool, now: float
    ) -> None:
        seen: set[str] = set()
        for kind, window_s, used in usage:
            name = budget.bucket_name(kind, window_s, self.host.key_id)
            seen.add(name)
            start = sent.starts.get(name) if sent is not None else None
            if sent is not None and start is None and name in st.buckets:
                start = st.buckets[name].start  # a zero-cost request: same window as sent
            budget.observe(st, name, used, start, accepted, now)
        if sent is None:
            return
        budget.release_probes(st, sent.probes)
        for name in sent.probes:
            if accepted and name not in seen:  # an exchange without usage headers
                budget.accepted_level(st, name, sent.levels[name], sent.starts[name], now)

    def _pushback(self, record: HttpRecord, sent: _Sent | None, usage: Usage, now: float) -> None:
        retry_after = retry_after_s(record.headers)
        path = f"{record.http_method} {record.path}"
        host = self.host

        def fn(st: HostState) -> list[Change]:
            self._observe(st, usage, sent, False, now)
            if record.status == 418:
                return [budget.banned(st, retry_after or DEFAULT_BAN_S, path, now)]
            kinds: set[Kind] = {"orders"} if record.error_code == -1015 else {"weight"}
            wait = retry_after if retry_after is not None else _window_left(st, now)
            return budget.pushback(st, kinds, host.key_id, wait, path, now, host.policy)

        self._leases.clear()
        host.publish(host.txn(fn))

    def forget(self, request: Request) -> None:
        """Release what a request that ended without a response still holds."""
        leftovers = [self._sent.pop(id(r)) for r in request.http if id(r) in self._sent]
        probes = [p for s in leftovers for p in s.probes]
        if probes:
            self.host.txn(lambda st: budget.release_probes(st, probes))


def _query(url: str) -> dict[str, str]:
    """The query parameters weights depend on (``symbol``, ``limit``), cheaply: a signed
    URL carries a long signature that a full parse would only waste time on. POST bodies
    are not seen here, which only matters for batchOrders (charged its base weight)."""
    _, sep, query = url.partition("?")
    return dict(_WEIGHT_PARAMS.findall(query)) if sep else {}


def _unrecord(record: HttpRecord, request: Request | None) -> None:
    """A request held back never left: it is not an HTTP exchange to report."""
    if request is not None and request.http and request.http[-1] is record:
        request.http.pop()


def _window_left(st: HostState, now: float) -> float:
    ends = [b.ends_at() - now for b in st.buckets.values() if b.kind == "weight"]
    return max(1.0, min(ends)) if ends else 1.0
