"""The HTTP hooks: charge every real request, learn from every response.

``before_http`` runs inside ccxt just before a request leaves. It charges the request its
Binance weight and order count (``perpbot.weights.request_cost``) against the shared budget:
from this process's small lease when it covers the cost (no shared transaction), otherwise
in a store transaction (off the event loop) that also takes the next lease. When there is
no room it raises ``RateWait`` before anything is sent (short waits, under half a second,
happen in place).

A cancel never waits for a slow store: when its transaction has not answered within
``CANCEL_PATIENCE_S`` (another process holds the SQLite write lock, Redis is slow) the
cancel leaves all the same (it can only reduce risk), and the transaction charges it when
the store answers. Once the store is known stuck (the store thread has been on one
transaction longer than that, or an earlier cancel left without it and it has not
answered since) a cancel leaves at once: the patience is waited once per stuck store, not
once per cancel. The kill switch's and the stop's cancels (made inside ``reducing_risk()``)
do not wait at all: they leave as their transaction is submitted and are charged when it
answers (a kill must not wait on a lock, not even 20 ms). Every cancel still waits out a
Retry-After or a ban the store has recorded. Likewise a risk-reducing request (a cancel,
the stop's listings, the dead-man countdown) leaves when the store is unavailable (its
disk is full, its file unreadable): ordinary requests fail closed there, these would
otherwise leave the orders standing (RATE_STORE_DOWN_REDUCING_SENT). Cancels and what the
kill switch and the stop send do not wait for a due re-read of the rules (``exchangeInfo``)
either: it is left to the next other request (on an unavailable store its transactions
would fail them).

``after_http`` reads the response: a 429 or 418 is queued for the shared state at once
(this process's next transaction comes after it), usage headers that say more than this
process knows are written to it (the exchange is the truth), and accepted responses raise
the level the exchange is known to accept while a bucket is probing.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from perpbot.client.errors import NotSent
from perpbot.client.headers import Usage
from perpbot.client.request import HttpRecord, Request, is_reducing_risk
from perpbot.client.waits import Interrupter
from perpbot.errors import RuntimeFailure
from perpbot.events import Decision
from perpbot.ratelimit import budget
from perpbot.ratelimit.budget import Admission, Change, HostState
from perpbot.ratelimit.explain import too_heavy_sentence
from perpbot.ratelimit.host import LAYER, HostBudget
from perpbot.ratelimit.rules import Kind
from perpbot.weights import Constant, cost_rule

IN_HOOK_MAX_S = 0.5  # longer waits leave ccxt (RateWait) so the signature stays fresh
# a cancel waits this long for the store (a healthy one answers within a few ms), then
# leaves regardless
CANCEL_PATIENCE_S = 0.02
DEFAULT_BAN_S = 60.0


class RateWait(NotSent):
    """Raised before a request leaves: wait ``admission.wait_s``, then send it anew."""

    def __init__(self, admission: Admission, what: str) -> None:
        super().__init__(f"{what}: held back {admission.wait_s:.3f} s ({admission.reason})")
        self.admission = admission
        self.what = what


@dataclass(slots=True)
class Sent:
    """What a request that left was charged (``HttpRecord.charge``), to settle on answer."""

    starts: dict[str, float] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    probes: list[str] = field(default_factory=list)


@dataclass(slots=True, eq=False)
class Lease:
    """Budget this process reserved in the shared state and spends alone, without a store
    transaction: ``weight`` and ``orders`` units per bucket, in the windows ``charge.starts``.

    A request draws its weight on every weight bucket and its order count on every order
    bucket of this key (``budget.charges_for``), so it may spend what the smallest lease of
    each kind has left: ``weight_room`` and ``orders_room`` (no bucket of a kind: no limit;
    a bucket the lease does not cover, a probing one: nothing). It stands while its windows
    last (``until``) and until a pushback: a 429 here voids it, one met by another process
    blocks the host, and the next request goes to the store (which takes the lease back).
    """

    weight: dict[str, int]
    orders: dict[str, int]
    weight_room: float
    orders_room: float
    until: float
    charge: Sent
    weight_spent: int = 0
    orders_spent: int = 0

    def take(self, weight: int, orders: int, now: float) -> bool:
        """Spend one request's cost, when the lease stands and covers all of it."""
        if now >= self.until:
            return False
        if self.weight_spent + weight > self.weight_room:
            return False
        if self.orders_spent + orders > self.orders_room:
            return False
        self.weight_spent += weight
        self.orders_spent += orders
        return True

    def unspent(self) -> dict[str, int]:
        """What is left of each bucket's lease (given back in the next transaction)."""
        left = {name: units - self.weight_spent for name, units in self.weight.items()}
        left.update({name: units - self.orders_spent for name, units in self.orders.items()})
        return left


def grant(st: HostState, leased: dict[str, int], key_id: str) -> Lease:
    """The lease a transaction reserved (``leased`` units per bucket of ``st``)."""
    drawn = budget.charges_for(1, 1, st, key_id)  # every bucket a request of this key draws on
    rooms = {"weight": math.inf, "orders": math.inf}
    units: dict[str, dict[str, int]] = {"weight": {}, "orders": {}}
    for name in drawn:
        kind = st.buckets[name].kind
        rooms[kind] = min(rooms[kind], leased.get(name, 0))
        if name in leased:
            units[kind][name] = leased[name]
    starts = {name: st.buckets[name].start for name in leased}
    return Lease(
        weight=units["weight"],
        orders=units["orders"],
        weight_room=rooms["weight"],
        orders_room=rooms["orders"],
        until=min(st.buckets[name].ends_at() for name in leased),
        charge=Sent(starts=starts),
    )


def give_back(st: HostState, lease: Lease) -> None:
    """Return to the shared state what ``lease`` did not spend (in windows still current)."""
    for name, units in lease.unspent().items():
        b = st.buckets.get(name)
        if b is not None and b.start == lease.charge.starts[name] and units > 0:
            b.used = max(0, b.used - units)


@dataclass(slots=True, eq=False)
class HttpBudget:
    host: HostBudget
    every: float | None  # the rules re-read period (RulesKeeper.every)
    interrupter: Interrupter
    lease: Lease | None = None
    # when a cancel last left without the store's answer (time.monotonic())
    left_at: float = 0.0

    # -- before ---------------------------------------------------------------------------
    def before_http(self, record: HttpRecord, request: Request | None) -> Awaitable[None] | None:
        """Charge ``record``'s request. Returns None when this process's lease covered it
        (no shared transaction), else a coroutine that takes it from the shared budget."""
        rule = cost_rule(record.http_method, record.path)
        if isinstance(rule, Constant):  # most costs do not depend on the parameters
            weight, orders = rule.cost
        else:  # depth, klines, batchOrders...: by the query's symbol and limit
            weight, orders = rule(dict(parse_qsl(urlsplit(record.url).query)))
        cancel = request is not None and request.method_class == "cancel"
        # the rules re-read itself must pass while rules are due, and so may a cancel and
        # whatever the kill switch and the stop send (their listings, the dead-man countdown):
        # the re-read is left to the next other request, so a store that cannot be written
        # (a full disk) never holds them back through the re-read's own transactions
        skip_rules = cancel or is_reducing_risk() or record.path.endswith("/exchangeInfo")
        rules_every = None if skip_rules else self.every
        now = self.host.now()
        lease = self.lease
        if (
            lease is not None
            and not budget.refresh_due(self.host.mirror, now, rules_every)
            and self.host.store.blocked_until() <= now
            and lease.take(weight, orders, now)
        ):
            record.charge = lease.charge
            return None
        reducing = request is not None and request.risk_reducing
        return self._from_store(record, request, weight, orders, rules_every, cancel, reducing)

    async def _from_store(
        self,
        record: HttpRecord,
        request: Request | None,
        weight: int,
        orders: int,
        every: float | None,
        cancel: bool,
        reducing: bool,
    ) -> None:
        waited = 0.0
        while True:
            now = self.host.now()
            # what the lease did not spend goes back in the same transaction
            returned, self.lease = self.lease, None
            future = self.host.submit(
                lambda st, now=now, returned=returned: self._acquire(
                    st, returned, weight, orders, now, every, reducing
                )
            )
            if cancel and self.host.store.blocked_until() <= now:
                if is_reducing_risk():  # the kill switch's and the stop's: never wait
                    self._leave_ahead(record, future)
                    return
                slow = await self._store_slow(future)
                if slow is not None:
                    self._leave_without(record, future, *slow)
                    return
            try:
                admission, lease = await asyncio.wrap_future(future)
            except RuntimeFailure as exc:
                if not reducing or exc.code != "RATE_STORE_UNAVAILABLE":
                    raise
                self._store_down(record, exc)
                return
            self.host.publish(admission.changes)
            self._take(lease)
            if admission.granted:
                record.charge = Sent(
                    starts=admission.starts, levels=admission.levels, probes=admission.probes
                )
                return
            if admission.reason == "too_heavy":
                _unrecord(record, request)
                sentence = too_heavy_sentence(
                    http_method=record.http_method,
                    path=record.path,
                    bucket=admission.bucket,
                    cost=admission.used,
                    limit=admission.cap,
                )
                raise RuntimeFailure(sentence, code="RATE_REQUEST_TOO_HEAVY")
            if admission.wait_s <= 0 or waited + admission.wait_s > IN_HOOK_MAX_S:
                _unrecord(record, request)
                raise RateWait(admission, f"{record.http_method} {record.path}")
            waited += admission.wait_s
            await self.interrupter.sleep(admission.wait_s)

    def _take(self, lease: Lease | None) -> None:
        """Take the lease a transaction granted; one granted meanwhile (to another request's
        transaction) goes back to the store."""
        if lease is None:
            return
        older, self.lease = self.lease, lease
        if older is not None:
            self.host.post(lambda st: give_back(st, older))

    def _answer_later(self, future: Future[tuple[Admission, Lease | None]]) -> None:
        loop = asyncio.get_running_loop()

        def done(f: Future[tuple[Admission, Lease | None]]) -> None:
            with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                loop.call_soon_threadsafe(self._late_answer, f)

        future.add_done_callback(done)

    def _late_answer(self, future: Future[tuple[Admission, Lease | None]]) -> None:
        """The store answered a cancel that did not wait for it: keep the lease it took
        (when it found no room, the cancel that went out is left to the usage headers)."""
        if not future.cancelled() and future.exception() is None:
            admission, lease = future.result()
            self.host.publish(admission.changes)
            if admission.granted:
                self._take(lease)

    def _known_stuck(self) -> str | None:
        """Why the store is known stuck already (so a cancel does not wait for it), else None."""
        if self.left_at > self.host.ended_at:
            return "has not answered since an earlier cancel left without it"
        busy = self.host.busy_for()
        if busy > CANCEL_PATIENCE_S:
            return f"has been on one transaction for {busy:.3f} s"
        return None

    async def _store_slow(self, future: Future[Any]) -> tuple[str, float] | None:
        """None when the store answers a cancel's transaction within the patience; else why
        the cancel leaves without the answer, and how long it waited for it (nothing when
        the store is known stuck already)."""
        stuck = self._known_stuck()
        if stuck is not None:
            return stuck, 0.0
        asked = time.monotonic()
        if await _answered(future, CANCEL_PATIENCE_S):
            return None
        return f"has not answered for {CANCEL_PATIENCE_S:g} s", time.monotonic() - asked

    def _leave_without(
        self, record: HttpRecord, future: Future[Any], why: str, waited_s: float
    ) -> None:
        """The cancel leaves without the store's answer, which charges it when it comes."""
        self.left_at = time.monotonic()
        self._answer_later(future)
        self._send_slow(record, why, waited_s)

    def _leave_ahead(self, record: HttpRecord, future: Future[Any]) -> None:
        """A kill's (or the stop's) cancel leaves at once, charged when the store answers. A
        store known stuck is said now; one that has not answered after the patience, then."""
        stuck = self._known_stuck()
        if stuck is not None:
            self._leave_without(record, future, stuck, 0.0)
            return
        self._answer_later(future)
        asyncio.get_running_loop().call_later(
            CANCEL_PATIENCE_S, self._unanswered_after_leaving, record, future
        )

    def _unanswered_after_leaving(self, record: HttpRecord, future: Future[Any]) -> None:
        if not future.done():
            self.left_at = time.monotonic()
            self._send_slow(record, f"had not answered {CANCEL_PATIENCE_S:g} s later", 0.0)

    def _send_slow(self, record: HttpRecord, why: str, waited_s: float) -> None:
        sentence = (
            f"{record.http_method} {record.path} sent without waiting for the shared "
            f"rate-limit store ({self.host.store.description}), which {why}: a cancel only "
            f"reduces risk; it is charged once the store answers"
        )
        self.host.bus.publish(
            Decision(
                layer=LAYER,
                action="info",
                code="RATE_STORE_SLOW_CANCEL_SENT",
                sentence=sentence,
                data={
                    "request": f"{record.http_method} {record.path}",
                    "waited_ms": round(waited_s * 1000.0, 1),
                },
            )
        )

    def _store_down(self, record: HttpRecord, exc: RuntimeFailure) -> None:
        what = f"{record.http_method} {record.path}"
        self.host.bus.publish(
            Decision(
                layer=LAYER,
                action="info",
                code="RATE_STORE_DOWN_REDUCING_SENT",
                sentence=f"sending {what} without the shared rate-limit budget: {exc.message}; "
                "it only reduces risk (cancels, the stop's listings, the dead-man countdown)",
                data={"request": what},
            )
        )

    def _acquire(
        self,
        st: HostState,
        returned: Lease | None,
        weight: int,
        orders: int,
        now: float,
        every: float | None,
        reducing: bool,
    ) -> tuple[Admission, Lease | None]:
        budget.ensure_key(st, self.host.key_id)
        if returned is not None:
            give_back(st, returned)
        charges = budget.charges_for(weight, orders, st, self.host.key_id)
        admission = budget.acquire(
            st, charges, now, self.host.policy, every, lease=True, risk_reducing=reducing
        )
        if not admission.leased:
            return admission, None
        return admission, grant(st, admission.leased, self.host.key_id)

    # -- after ------------------------------------------------------------------------------
    def after_http(self, record: HttpRecord, request: Request | None) -> None:
        sent = record.charge
        record.charge = None
        status = record.status or 0
        now = self.host.now()
        usage = record.usage  # read once by the transport (perpbot.client.headers)
        if status in (429, 418):
            self._pushback(record, sent, now)
            return
        probing = sent is not None and bool(sent.probes)
        if not probing and not self._above_known(usage, now):
            return
        if sent is None and not usage:
            return
        self.host.post(lambda st: self._observe(st, usage, sent, status < 400, now))

    def _above_known(self, usage: list[Usage], now: float) -> bool:
        """Whether a usage header says more than this process knows (or more than a probing
        bucket has seen accepted): the exchange is the truth, write it."""
        m = self.host.mirror
        for kind, window_s, used in usage:
            b = m.buckets.get(budget.bucket_name(kind, window_s, self.host.key_id))
            if b is None:
                continue
            if b.safe is not None and used > b.safe:
                return True
            if used > (b.used if b.start == b.window_start(now) else 0):
                return True
        return False

    def _observe(
        self, st: HostState, usage: list[Usage], sent: Sent | None, accepted: bool, now: float
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

    def _pushback(self, record: HttpRecord, sent: Sent | None, now: float) -> None:
        usage, retry_after = record.usage, record.retry_after
        path = f"{record.http_method} {record.path}"
        host = self.host
        status, error_code = record.status, record.error_code

        def fn(st: HostState) -> list[Change]:
            self._observe(st, usage, sent, False, now)
            if status == 418:
                return [budget.banned(st, retry_after or DEFAULT_BAN_S, path, now)]
            kinds: set[Kind] = {"orders"} if error_code == -1015 else {"weight"}
            wait = retry_after if retry_after is not None else _window_left(st, now)
            return budget.pushback(st, kinds, host.key_id, wait, path, now, host.policy)

        self.lease = None  # void: the next request of this process goes to the store
        host.post(fn)

    def forget(self, request: Request) -> None:
        """Release what a request that ended without a response still holds."""
        probes: list[str] = []
        for record in request.http:
            if record.charge is not None:
                probes.extend(record.charge.probes)
                record.charge = None
        if probes:
            self.host.post(lambda st: budget.release_probes(st, probes))


async def _answered(future: Future[Any], within_s: float) -> bool:
    """Whether the store answered within ``within_s`` (the transaction goes on anyway)."""
    waiting = asyncio.wrap_future(future)
    done, _ = await asyncio.wait({waiting}, timeout=within_s)
    if not done:  # its answer, or its failure, is taken by whoever waits on ``future``
        waiting.add_done_callback(lambda f: f.cancelled() or f.exception())
    else:  # the caller reads the outcome from ``future``; this wrapper's failure is seen here
        waiting.cancelled() or waiting.exception()  # (else asyncio prints it at exit)
    return bool(done)


def _unrecord(record: HttpRecord, request: Request | None) -> None:
    """A request held back never left: it is not an HTTP exchange to report."""
    if request is not None and request.http and request.http[-1] is record:
        request.http.pop()


def _window_left(st: HostState, now: float) -> float:
    ends = [b.ends_at() - now for b in st.buckets.values() if b.kind == "weight"]
    return max(1.0, min(ends)) if ends else 1.0
