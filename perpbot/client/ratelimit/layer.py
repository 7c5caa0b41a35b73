"""The RateLimiter layer: one shared, header-corrected, explained budget per exchange host.

Two parts work together:

- HTTP hooks on the transport (``observers.before``/``after``) charge every actual HTTP
  request its Binance weight and order count (``perpbot.weights.request_cost``), so retries
  and ccxt methods that make several requests are all counted, and read every response's
  usage headers, 429s and 418s into the shared state.
- The pipeline layer holds a request back *before* ccxt signs it: long waits happen here,
  never inside ccxt, where a signed timestamp would age past ``recvWindow``. When the hook
  finds no room it raises ``RateWait`` before anything is sent; the layer waits (through
  the interrupter, so a stop or the kill switch cuts it short) and sends the request anew.

The layer also keeps the budget's rules current: from the ``load_markets`` response at
connect, then by re-reading ``exchangeInfo`` every ``[limits] refresh_s`` and right after
any 429 or 418 (one process per host does it; the others wait for it).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from perpbot.client.pipeline import CallNext
from perpbot.client.ratelimit import budget
from perpbot.client.ratelimit.budget import Change, Grant, HostState, Policy
from perpbot.client.ratelimit.explain import too_heavy_sentence, wait_sentence
from perpbot.client.ratelimit.rules import (
    RuleSet,
    from_exchange_info,
    retry_after_s,
    usage_headers,
)
from perpbot.client.ratelimit.store import Store
from perpbot.client.request import HttpRecord, Request
from perpbot.client.waits import Interrupter
from perpbot.errors import RuntimeFailure
from perpbot.events import Decision, EventBus
from perpbot.weights import request_cost

IN_HOOK_MAX_S = 0.5  # longer waits leave ccxt (RateWait) so the signature stays fresh
REFRESH_LEASE_S = 10.0
REFRESH_METHOD = "fapipublic_get_exchangeinfo"
DEFAULT_BAN_S = 60.0
WAIT_CODES = {
    "ban": "RATE_WAIT_BANNED",
    "retry_after": "RATE_WAIT_RETRY_AFTER",
    "budget": "RATE_WAIT_BUDGET",
    "probe": "RATE_WAIT_PROBE",
    "refresh": "RATE_WAIT_REFRESH",
}


class RateWait(Exception):
    """Raised by the HTTP hook before a request leaves: wait ``grant.wait_s``, then resend.

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


class RateLimiter:
    name = "ratelimit"

    def __init__(
        self,
        *,
        exchange: Any,
        store: Store,
        policy: Policy,
        bus: EventBus,
        interrupter: Interrupter,
        host: str,
        key_id: str,
        refresh_s: float,
        max_wait_s: float,
        fallback: RuleSet | None = None,
    ) -> None:
        self.exchange = exchange
        self.store = store
        self.policy = policy
        self.bus = bus
        self.interrupter = interrupter
        self.host = host
        self.key_id = key_id
        self.refresh_s = refresh_s
        self.max_wait_s = max_wait_s
        self.fallback = fallback
        self.can_refresh = hasattr(exchange, REFRESH_METHOD)
        self.mirror = HostState()
        self._sent: dict[int, _Sent] = {}
        self._refresh_lock: asyncio.Lock | None = None
        exchange.enableLastJsonResponse = True  # the load_markets response carries rateLimits
        exchange.perpbot_observers.before.append(self.before_http)
        exchange.perpbot_observers.after.append(self.after_http)
        now = self.now()
        if fallback is not None:
            self._txn(lambda st: self._publish(budget.apply_rules(st, fallback, now, policy)))
        else:
            self._txn(lambda st: budget.ensure_key(st, key_id))

    # -- plumbing ---------------------------------------------------------------------------
    def now(self) -> float:
        """The exchange's clock (windows are aligned to it), from ccxt's time offset."""
        offset_ms = self.exchange.options.get("timeDifference") or 0
        return time.time() - float(offset_ms) / 1000.0

    def _txn(self, fn: Any) -> Any:
        def run(st: HostState) -> Any:
            result = fn(st)
            self.mirror = st
            return result

        return self.store.transact(run)

    def _publish(self, changes: list[Change]) -> None:
        for c in changes:
            self.bus.publish(Decision(self.name, c.action, c.code, c.sentence, dict(c.data)))

    # -- the layer --------------------------------------------------------------------------
    async def __call__(self, request: Request, call_next: CallNext) -> Any:
        while True:
            await self._gate(request, call_next)
            try:
                result = await call_next(request)
            except RateWait as held:
                await self._hold(held.grant, held.what)
                continue
            finally:
                self._forget(request)
            if request.method == "load_markets":
                self._rules_from_markets(request)
            return result

    async def _gate(self, request: Request, call_next: CallNext) -> None:
        """Wait out bans and Retry-After, and refresh stale rules, before ccxt signs."""
        while True:
            now = self.now()
            m = self.mirror
            blocked = max(m.banned_until, m.blocked_until)
            if blocked > now:
                reason = "ban" if m.banned_until > now else "retry_after"
                await self._hold(Grant(blocked - now, reason), request.describe())
                continue
            if request.method == "load_markets" or not self._refresh_due(now):
                return
            await self._refresh(request, call_next)
            return

    @property
    def _refresh_every(self) -> float | None:
        return self.refresh_s if self.can_refresh else None

    def _refresh_due(self, now: float) -> bool:
        return budget.refresh_due(self.mirror, now, self._refresh_every)

    async def _hold(self, grant: Grant, what: str) -> None:
        wait = grant.wait_s
        if wait > self.max_wait_s:
            raise RuntimeFailure(
                wait_sentence(
                    grant.reason, what, wait, grant.bucket, grant.used, grant.cap, self.now()
                )
                + f"; refusing to wait longer than [limits] max_wait_s = {self.max_wait_s:g} s",
                code="RATE_WAIT_TOO_LONG",
            )
        if wait > 1.0:
            sentence = wait_sentence(
                grant.reason, what, wait, grant.bucket, grant.used, grant.cap, self.now()
            )
            data = {
                "wait_s": round(wait, 3),
                "reason": grant.reason,
                "bucket": grant.bucket,
                "used": grant.used,
                "limit": grant.cap,
                "request": what,
            }
            self.bus.publish(Decision(self.name, "wait", WAIT_CODES[grant.reason], sentence, data))
        await self.interrupter.sleep(wait)

    # -- rules ------------------------------------------------------------------------------
    def _rules_from_markets(self, request: Request) -> None:
        if not any(r.path.endswith("/exchangeInfo") and r.status == 200 for r in request.http):
            return  # markets came from ccxt's cache: nothing new was read
        self._install_rules(from_exchange_info(getattr(self.exchange, "last_json_response", None)))

    def _install_rules(self, rules: RuleSet | None) -> None:
        now = self.now()

        def fn(st: HostState) -> list[Change]:
            st.rules_checked_at, st.refresh_until = now, 0.0
            chosen = rules or self.fallback
            changes = budget.apply_rules(st, chosen, now, self.policy) if chosen else []
            budget.ensure_key(st, self.key_id)
            return changes

        self._publish(self._txn(fn))

    async def _refresh(self, request: Request, call_next: CallNext) -> None:
        """Re-read exchangeInfo.rateLimits (one client per host at a time)."""
        if self._refresh_lock is None:
            self._refresh_lock = asyncio.Lock()
        async with self._refresh_lock:
            while True:
                now = self.now()

                def claim(st: HostState, now: float = now) -> str:
                    if not budget.refresh_due(st, now, self.refresh_s):
                        return "fresh"
                    if st.refresh_until > now:
                        return "busy"
                    st.refresh_until = now + REFRESH_LEASE_S
                    return "mine"

                verdict = self._txn(claim)
                if verdict == "fresh":
                    return
                if verdict == "busy":  # another process is reading them: use its answer
                    await self.interrupter.sleep(min(0.02, self.mirror.refresh_until - now))
                    continue
                inner = Request(
                    method=REFRESH_METHOD,
                    command=request.command,
                    profile=request.profile,
                    intent="rate-limit rules",
                    id=self.bus.next_request_id(),
                )
                try:
                    payload = await call_next(inner)
                except RateWait as held:
                    self._txn(_release_refresh)
                    await self._hold(held.grant, held.what)
                    continue
                except Exception:  # a failed re-read keeps the current rules until next period
                    self._txn(partial(_release_refresh, checked_at=now))
                    return
                finally:
                    self._forget(inner)
                self._install_rules(from_exchange_info(payload))
                return

    # -- HTTP hooks -------------------------------------------------------------------------
    async def before_http(self, record: HttpRecord, request: Request | None) -> None:
        weight, orders = request_cost(record.http_method, record.path, _query(record.url))
        # the rules re-read itself must pass while rules are due; everything else waits for it
        refresh_every = None if record.path.endswith("/exchangeInfo") else self._refresh_every
        waited = 0.0
        while True:
            now = self.now()

            def fn(st: HostState, now: float = now) -> Grant:
                budget.ensure_key(st, self.key_id)
                charges = budget.charges_for(weight, orders, st, self.key_id)
                return budget.acquire(st, charges, now, self.policy, refresh_every)

            grant: Grant = self._txn(fn)
            self._publish(grant.changes)
            if grant.reason == "too_heavy":
                if request is not None and request.http and request.http[-1] is record:
                    request.http.pop()
                raise RuntimeFailure(
                    too_heavy_sentence(record.http_method, record.path, grant),
                    code="RATE_REQUEST_TOO_HEAVY",
                )
            if grant.granted:
                self._sent[id(record)] = _Sent(grant.starts, grant.levels, grant.probes)
                return
            if waited + grant.wait_s > IN_HOOK_MAX_S or grant.wait_s <= 0:
                if request is not None and request.http and request.http[-1] is record:
                    request.http.pop()  # it never left: not an HTTP exchange to report
                raise RateWait(grant, f"{record.http_method} {record.path}")
            waited += grant.wait_s
            await self.interrupter.sleep(grant.wait_s)

    def after_http(self, record: HttpRecord, request: Request | None) -> None:
        sent = self._sent.pop(id(record), None)
        status = record.status or 0
        usage = usage_headers(record.headers)
        now = self.now()
        if status in (418, 429):
            self._pushback(record, sent, usage, now)
            return
        if sent is None and not usage:
            return
        if not self._needs_write(usage, sent, now):
            return

        def fn(st: HostState) -> None:
            self._observe(st, usage, sent, status < 400, now)

        self._txn(fn)

    def _needs_write(
        self, usage: list[tuple[str, int, int]], sent: _Sent | None, now: float
    ) -> bool:
        if sent is not None and sent.probes:
            return True
        for kind, window_s, used in usage:
            b = self.mirror.buckets.get(budget.bucket_name(kind, window_s, self.key_id))  # type: ignore[arg-type]
            if b is None:
                continue
            if b.start + b.window_s <= now or used > b.used:
                return True
            if b.safe is not None and used > b.safe:
                return True
        return False

    def _observe(
        self,
        st: HostState,
        usage: list[tuple[str, int, int]],
        sent: _Sent | None,
        accepted: bool,
        now: float,
    ) -> None:
        seen: set[str] = set()
        for kind, window_s, used in usage:
            name = budget.bucket_name(kind, window_s, self.key_id)  # type: ignore[arg-type]
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

    def _pushback(
        self,
        record: HttpRecord,
        sent: _Sent | None,
        usage: list[tuple[str, int, int]],
        now: float,
    ) -> None:
        retry_after = retry_after_s(record.headers)
        path = f"{record.http_method} {record.path}"

        def fn(st: HostState) -> list[Change]:
            self._observe(st, usage, sent, False, now)
            if record.status == 418:
                return [budget.banned(st, retry_after or DEFAULT_BAN_S, path, now)]
            kinds: set[Any] = {"orders"} if record.error_code == -1015 else {"weight"}
            wait = retry_after if retry_after is not None else _window_left(st, now)
            return budget.pushback(st, kinds, self.key_id, wait, path, now, self.policy)

        self._publish(self._txn(fn))

    def _forget(self, request: Request) -> None:
        """Release what a request that ended without a response still holds."""
        leftovers = [self._sent.pop(id(r)) for r in request.http if id(r) in self._sent]
        probes = [p for s in leftovers for p in s.probes]
        if probes:
            self._txn(lambda st: budget.release_probes(st, probes))

    # -- status -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """Budget use for ticks.jsonl and `perpbot status` (the ``rate`` section)."""
        from perpbot.client.ratelimit.status import snapshot

        return snapshot(
            self.store.read(), self.now(), self.policy, self.key_id, self.store.description
        )


def _query(url: str) -> dict[str, str]:
    return dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))


def _release_refresh(st: HostState, checked_at: float | None = None) -> None:
    st.refresh_until = 0.0
    if checked_at is not None:
        st.rules_checked_at = max(st.rules_checked_at, checked_at)


def _window_left(st: HostState, now: float) -> float:
    ends = [b.ends_at() - now for b in st.buckets.values() if b.kind == "weight"]
    return max(1.0, min(ends)) if ends else 1.0
