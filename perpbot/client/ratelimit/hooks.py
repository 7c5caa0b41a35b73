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
import time
from collections.abc import Awaitable
from dataclasses import dataclass

from perpbot.client.errors import NotSent
from perpbot.client.ratelimit import budget
from perpbot.client.ratelimit.explain import too_heavy_sentence
from perpbot.client.ratelimit.host import HostBudget
from perpbot.client.ratelimit.rules import Kind, retry_after_s, usage_header, usage_headers
from perpbot.client.ratelimit.rules_keeper import RulesKeeper
from perpbot.client.ratelimit.state import Change, Grant, HostState
from perpbot.client.request import HttpRecord, Request
from perpbot.client.waits import Interrupter
from perpbot.errors import RuntimeFailure
from perpbot.weights import Constant, cost_rule

PLANS_MAX = 1024
IN_HOOK_MAX_S = 0.5  # longer waits leave ccxt (RateWait) so the signature stays fresh
CORRECTION_EVERY_S = 0.05  # header corrections far from the cap are batched this much
NEAR_CAP = 0.9  # from here on every correction is written at once
DEFAULT_BAN_S = 60.0
Usage = list[tuple[Kind, int, int]]
_WEIGHT_PARAMS = ("symbol=", "limit=")


class RateWait(NotSent):
    """Raised before a request leaves: wait ``grant.wait_s``, then send it anew.

    ``not_sent`` tells the transport (and any retry policy) that nothing reached the
    exchange, so resending cannot duplicate anything.
    """

    not_sent = True

    def __init__(self, grant: Grant, what: str) -> None:
        super().__init__(f"{what}: held back {grant.wait_s:.3f} s ({grant.reason})")
        self.grant = grant
        self.what = what


@dataclass(slots=True)
class _Sent:
    starts: dict[str, float]
    levels: dict[str, int]
    probes: list[str]


@dataclass(slots=True)
class _Lease:
    start: float
    units: int


class _Plan:
    """How a request of one cost spends from this process's leases, worked out once.

    ``parts`` is None when the leases cannot cover it (the shared store decides). A plan is
    kept (by URL, or by method and path when the cost is constant) until ``until`` (a lease's
    window ends, or the rules fall due) or until the leases or the mirror change, whichever
    comes first; ``sent`` is shared, read-only."""

    __slots__ = ("cost", "every", "parts", "sent", "until")

    def __init__(
        self,
        cost: tuple[int, int],
        every: float | None,
        parts: list[tuple[_Lease, int]] | None = None,
        sent: _Sent | None = None,
        until: float = -math.inf,
    ) -> None:
        self.cost = cost
        self.every = every
        self.parts = parts
        self.sent = sent
        self.until = until


class HttpBudget:
    def __init__(self, host: HostBudget, rules: RulesKeeper, interrupter: Interrupter) -> None:
        self.host = host
        self.rules = rules
        self.interrupter = interrupter
        self._leases: dict[str, _Lease] = {}
        self._checked_at = -math.inf  # monotonic: the last full look at the usage headers
        # what the hot path knows, made anew whenever the leases or the shared state change
        self._plans: dict[object, _Plan] = {}  # URL, or (method, path) -> plan
        self._quiet: dict[str, float] = {}  # usage header -> below this, nothing to write
        self._bucket_of: dict[str, str | None] = {}  # usage header name -> bucket
        host.on_txn(self._forget_plans)

    def _forget_plans(self) -> None:
        self._plans.clear()
        self._quiet.clear()

    def _set_leases(self, leases: dict[str, _Lease]) -> None:
        self._leases = leases
        self._plans.clear()

    # -- before ---------------------------------------------------------------------------
    def before_http(self, record: HttpRecord, request: Request | None) -> Awaitable[None] | None:
        """Charge ``record``'s request. Returns None when this process's lease covered it
        (the common case: no shared transaction, no coroutine), else a coroutine that takes
        it from the shared budget and may wait."""
        plans = self._plans
        # public URLs repeat exactly; signed ones never do (their timestamp moves), so
        # constant-cost requests are also known by method and path
        plan = plans.get(record.url) or plans.get((record.http_method, record.path))
        if plan is None:
            plan = self._plan(record)
        parts = plan.parts
        if parts is not None:
            now = self.host.now()
            if now < plan.until and self.host.store.blocked_until() <= now:
                for lease, amount in parts:
                    if lease.units < amount:
                        break
                else:
                    for lease, amount in parts:
                        lease.units -= amount
                    record.charge = plan.sent
                    return None
        return self._from_store(record, request, plan.cost[0], plan.cost[1], plan.every)

    async def _from_store(
        self,
        record: HttpRecord,
        request: Request | None,
        weight: int,
        orders: int,
        every: float | None,
    ) -> None:
        waited = 0.0
        while True:
            now = self.host.now()
            grant: Grant = self.host.txn(
                lambda st, now=now: self._acquire(st, weight, orders, now, every)
            )
            self.host.publish(grant.changes)
            # the transaction gave back what our leases had not spent: they are void now
            self._set_leases({n: _Lease(grant.starts[n], u) for n, u in grant.leased.items()})
            if grant.granted:
                record.charge = _Sent(grant.starts, grant.levels, grant.probes)
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

    def _plan(self, record: HttpRecord) -> _Plan:
        """Price ``record`` (its Binance weight and order count) and work out how the leases
        cover that now; kept for the next request of the same URL (or method and path)."""
        rule, url, path = cost_rule(record.http_method, record.path), record.url, record.path
        key: object
        if type(rule) is Constant:  # most costs are constant
            cost, key = rule.cost, (record.http_method, path)
        else:  # the others depend on the query (symbol, limit)
            cost = rule(_query(url))
            key = None if "signature=" in url else url
        # the rules re-read itself must pass while rules are due; everything else waits
        every = None if path.endswith("/exchangeInfo") else self.rules.every
        plan = self._lease_plan(cost, every, self.host.now())
        if plan.parts is not None and key is not None:
            if len(self._plans) >= PLANS_MAX:  # URLs with moving parameters (since=...)
                self._plans.clear()
            self._plans[key] = plan
        return plan

    def _lease_plan(self, cost: tuple[int, int], every: float | None, now: float) -> _Plan:
        """How ``cost`` spends from the leases now (``parts`` None when they cannot cover
        it: rules due, a bucket probing, no lease for a bucket or one from another window)."""
        m = self.host.mirror
        if budget.refresh_due(m, now, every):
            return _Plan(cost, every)
        until = math.inf if every is None else (math.floor(now / every) + 1) * every
        parts: list[tuple[_Lease, int]] = []
        starts: dict[str, float] = {}
        for name, amount in budget.charges_for(cost[0], cost[1], m, self.host.key_id).items():
            b, lease = m.buckets.get(name), self._leases.get(name)
            if b is None or b.safe is not None or lease is None:
                return _Plan(cost, every)
            if lease.start != math.floor(now / b.window_s) * b.window_s:
                return _Plan(cost, every)
            parts.append((lease, amount))
            starts[name] = lease.start
            until = min(until, lease.start + b.window_s)
        return _Plan(cost, every, parts, _Sent(starts, {}, []), until)

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

    # -- after ------------------------------------------------------------------------------
    def after_http(self, record: HttpRecord, request: Request | None) -> None:
        sent = record.charge
        record.charge = None
        status = record.status or 0
        if status == 429 or status == 418:
            self._pushback(record, sent, usage_headers(record.headers), self.host.now())
            return
        headers = record.headers
        if sent is None or not sent.probes:  # no probe to settle: only usage may need writing
            mono = time.monotonic()
            if mono - self._checked_at < CORRECTION_EVERY_S:
                # looked at less than 50 ms ago: only a usage near the cap (or above what
                # a probing bucket has seen accepted) is worth a look now
                quiet = self._quiet
                for header, value in headers.items():
                    level = quiet.get(header)
                    if level is None:
                        level = quiet[header] = self._quiet_level(header)
                    try:
                        if int(value) >= level:
                            break
                    except (TypeError, ValueError):
                        break  # an unusual value: the full look judges it
                else:
                    return
            self._checked_at = mono
            now = self.host.now()
            if not self._above_known(headers, now):
                return
        else:
            now = self.host.now()
        usage = usage_headers(headers)
        if sent is None and not usage:
            return
        self.host.txn(lambda st: self._observe(st, usage, sent, status < 400, now))

    def _bucket_of_header(self, header: str) -> str | None:
        """The bucket a usage header counts (``X-MBX-USED-WEIGHT-1M`` -> ``weight/60s``)."""
        name = self._bucket_of.get(header, False)
        if name is False:  # a header name not seen yet
            parsed = usage_header(header)
            name = self._bucket_of[header] = (
                None if parsed is None else budget.bucket_name(*parsed, self.host.key_id)
            )
        return name

    def _quiet_level(self, header: str) -> float:
        """The usage below which ``header`` needs no look between the batched ones: under
        90 % of the cap, and no higher than a probing bucket has seen accepted."""
        name = self._bucket_of_header(header)
        b = None if name is None else self.host.mirror.buckets.get(name)
        if b is None:
            return math.inf
        cap = b.cap(self.host.policy.safety_margin)
        level = math.inf if cap is None else NEAR_CAP * cap
        return level if b.safe is None else min(level, b.safe + 1)

    def _above_known(self, headers: dict[str, str], now: float) -> bool:
        """Whether a usage header says more than the shared state knows (or more than a
        probing bucket has seen accepted): the exchange is the truth, write it."""
        m = self.host.mirror
        for header, value in headers.items():
            name = self._bucket_of_header(header)
            b = None if name is None else m.buckets.get(name)
            if b is None:
                continue
            try:
                used = int(value)
            except (TypeError, ValueError):
                return True  # an unusual value: the full parse (usage_headers) judges it
            if b.safe is not None and used > b.safe:
                return True
            known = b.used if b.start == math.floor(now / b.window_s) * b.window_s else 0
            if used > known:
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

        self._set_leases({})
        host.publish(host.txn(fn))

    def forget(self, request: Request) -> None:
        """Release what a request that ended without a response still holds."""
        probes: list[str] = []
        for record in request.http:
            if record.charge is not None:
                probes.extend(record.charge.probes)
                record.charge = None
        if probes:
            self.host.txn(lambda st: budget.release_probes(st, probes))


def _query(url: str) -> dict[str, str]:
    """The query parameters weights depend on (``symbol``, ``limit``), cheaply: a signed
    URL carries a long signature that a full parse would only waste time on. POST bodies
    are not seen here, which only matters for batchOrders (charged its base weight)."""
    start = url.find("?")
    if start < 0:
        return {}
    out: dict[str, str] = {}
    for part in url[start + 1 :].split("&"):
        if part.startswith(_WEIGHT_PARAMS):
            name, _, value = part.partition("=")
            out[name] = value
    return out


def _unrecord(record: HttpRecord, request: Request | None) -> None:
    """A request held back never left: it is not an HTTP exchange to report."""
    if request is not None and request.http and request.http[-1] is record:
        request.http.pop()


def _window_left(st: HostState, now: float) -> float:
    ends = [b.ends_at() - now for b in st.buckets.values() if b.kind == "weight"]
    return max(1.0, min(ends)) if ends else 1.0
