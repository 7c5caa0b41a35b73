"""The RateLimiter layer: one shared, header-corrected, explained budget per exchange host.

Three parts work together:

- ``HttpBudget`` (hooks on the transport, ``observers.before``/``after``) charges every
  actual HTTP request its Binance weight and order count, so retries and ccxt methods that
  make several requests are all counted, and reads every response's usage headers, 429s
  and 418s into the shared state;
- ``RulesKeeper`` keeps the budget's rules current (exchangeInfo, else ``[limits]``): read
  at connect, re-read every ``[limits] refresh_s`` period (and after a 429 or 418) by one
  client per host (a lease in the shared state) while every other request waits for the
  answer; a failed re-read keeps the current rules until the next period;
- this layer does the long waits, never inside ccxt, where a signed timestamp would age
  past ``recvWindow``: when the hook finds the host banned or blocked (Retry-After), no
  room, or the rules due, it raises ``RateWait`` before anything is sent; the layer waits
  (through the interrupter, so a stop or the kill switch cuts it short at once), or has
  the rules re-read, and sends it anew (ccxt signs it anew). The hook is the one place
  that decides: the layer asks nothing of the budget before a request.

Every wait longer than a second is a ``wait`` Decision with a reason code and a sentence.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from perpbot.client.pipeline import CallNext
from perpbot.client.request import Request
from perpbot.client.waits import Interrupter
from perpbot.client.wire import HttpObservers
from perpbot.errors import RuntimeFailure
from perpbot.events import Decision
from perpbot.ratelimit import budget
from perpbot.ratelimit.budget import Admission, Change, HostState
from perpbot.ratelimit.connections import ConnectionBudget
from perpbot.ratelimit.explain import wait_sentence
from perpbot.ratelimit.hooks import HttpBudget, RateWait
from perpbot.ratelimit.host import LAYER, HostBudget
from perpbot.ratelimit.reserve import reserve_status
from perpbot.ratelimit.rules import RuleSet, from_exchange_info

__all__ = ["RateLimiter", "RateWait", "RulesKeeper"]

WAIT_CODES = {
    "ban": "RATE_WAIT_BANNED",
    "retry_after": "RATE_WAIT_RETRY_AFTER",
    "budget": "RATE_WAIT_BUDGET",
    "probe": "RATE_WAIT_PROBE",
    "refresh": "RATE_WAIT_REFRESH",
    "reserve": "RATE_WAIT_RESERVE",
}
REFRESH_METHOD = "fapipublic_get_exchangeinfo"
REFRESH_LEASE_S = 10.0
Hold = Callable[[Admission, str], Awaitable[None]]


@dataclass(slots=True, eq=False)
class RulesKeeper:
    """The budget's rules: the exchange's published ``rateLimits``, else ``[limits]``."""

    host: HostBudget
    refresh_s: float
    fallback: RuleSet | None
    exchange: Any
    # the re-read period, or None when this exchange's rules cannot be re-read
    every: float | None = field(init=False)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    def __post_init__(self) -> None:
        self.every = self.refresh_s if hasattr(self.exchange, REFRESH_METHOD) else None
        # queued, not waited for: connecting (`perpbot kill --direct` too) never waits for a
        # store another process holds; every later transaction of this process comes after
        self.host.post(self._set_up)

    def _set_up(self, st: HostState) -> list[Change]:
        """The ``[limits]`` fallback (until the exchange's own rules are read), and this
        key's order-count buckets."""
        host = self.host
        fallback = self.fallback
        changes = budget.apply_rules(st, fallback, host.now(), host.policy) if fallback else []
        budget.ensure_key(st, host.key_id)
        return changes

    def due(self, now: float) -> bool:
        return budget.refresh_due(self.host.mirror, now, self.every)

    async def from_markets(self, request: Request) -> None:
        """After load_markets: install the rateLimits of the exchangeInfo it read, if any."""
        if not any(r.path.endswith("/exchangeInfo") and r.status == 200 for r in request.http):
            return  # markets came from ccxt's cache: nothing new was read
        payload = getattr(self.host.exchange, "last_json_response", None)
        rules = from_exchange_info(payload)
        self.host.publish(await self.host.transact(lambda st: self._install(st, rules)))

    def install(self, rules: RuleSet | None) -> None:
        """Install ``rules`` (None: the fallback) and wait for the store here (set-up, tools)."""
        self.host.publish(self.host.txn(lambda st: self._install(st, rules)))

    def _install(self, st: HostState, rules: RuleSet | None) -> list[Change]:
        host, now = self.host, self.host.now()
        st.rules_checked_at, st.refresh_until = now, 0.0
        chosen = rules or self.fallback
        changes = budget.apply_rules(st, chosen, now, host.policy) if chosen else []
        budget.ensure_key(st, host.key_id)
        return changes

    async def refresh(self, request: Request, call_next: Any, hold: Hold) -> None:
        """Re-read exchangeInfo.rateLimits unless someone already did in this period."""
        host = self.host
        async with self._lock:
            while True:
                now = host.now()
                verdict = await host.transact(lambda st, now=now: self._claim(st, now))
                if verdict == "fresh":
                    return
                if verdict == "busy":  # another process is reading them: use its answer
                    wait = min(0.02, host.mirror.refresh_until - now)
                    await hold(Admission(wait_s=wait, reason="refresh"), request.describe())
                    continue
                inner = Request(
                    method=REFRESH_METHOD,
                    command=request.command,
                    profile=request.profile,
                    intent="rate-limit rules",
                    id=host.bus.next_request_id(),
                ).serving(request)
                try:
                    payload = await call_next(inner)
                except RateWait as held:
                    await host.transact(_release)
                    await hold(held.admission, held.what)
                    continue
                except Exception:  # keep the current rules until the next period
                    await host.transact(lambda st, now=now: _release(st, checked_at=now))
                    return
                except BaseException:  # cancelled: never leave the others waiting on us
                    await host.transact(_release)
                    raise
                rules = from_exchange_info(payload)
                host.publish(await host.transact(lambda st, r=rules: self._install(st, r)))
                return

    def _claim(self, st: HostState, now: float) -> str:
        if not budget.refresh_due(st, now, self.refresh_s):
            return "fresh"
        if st.refresh_until > now:
            return "busy"
        st.refresh_until = now + REFRESH_LEASE_S
        return "mine"


def _release(st: HostState, checked_at: float | None = None) -> None:
    st.refresh_until = 0.0
    if checked_at is not None:
        st.rules_checked_at = max(st.rules_checked_at, checked_at)


@dataclass(slots=True, eq=False)
class RateLimiter:
    name: ClassVar[str] = LAYER

    host: HostBudget
    rules: RulesKeeper
    interrupter: Interrupter
    max_wait_s: float
    description: str
    observers: HttpObservers  # the transport's HTTP hooks (Setup.observers)
    connections: ConnectionBudget | None = None  # new stream connections (the streams)
    http: HttpBudget = field(init=False)
    closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.http = HttpBudget(host=self.host, every=self.rules.every, interrupter=self.interrupter)
        exchange = self.host.exchange
        exchange.enableLastJsonResponse = True  # the load_markets response carries rateLimits
        self.observers.add_before(self.http.before_http)
        self.observers.after.append(self.http.after_http)

    @property
    def key_id(self) -> str:
        return self.host.key_id

    def now(self) -> float:
        return self.host.now()

    async def __call__(self, request: Request, call_next: CallNext) -> Any:
        while True:
            if self.closed:  # (also after a wait: the client may have closed meanwhile)
                raise RuntimeFailure(
                    f"{request.describe()}: this client is closed (its shared rate budget with it)",
                    code="CLIENT_CLOSED",
                )
            try:
                result = await call_next(request)
            except RateWait as held:
                # the HTTP hook held it back before it left (a ban, a Retry-After, no room,
                # rules due): wait here, outside ccxt, then send it anew (signed anew)
                self.http.forget(request)
                if held.admission.reason == "refresh":
                    await self.rules.refresh(request, call_next, self.hold)
                else:
                    await self.hold(held.admission, held.what)
                continue
            except Exception:
                self.http.forget(request)
                if self._unsettled(request):
                    await self.host.settled()
                raise
            except BaseException:
                self.http.forget(request)
                raise
            if len(request.http) > 1:  # (one answered request has settled its one charge)
                self.http.forget(request)
            if self._unsettled(request):
                await self.host.settled()
            if request.method == "load_markets":
                await self.rules.from_markets(request)
            return result

    def _unsettled(self, request: Request) -> bool:
        """Whether to wait until what the responses taught (usage, a 429) is in the shared
        state (``host.settled()``), so that the caller's next step, in any process, sees
        it: while something posted has yet to run, and not for a cancel."""
        return request.method_class != "cancel" and self.host.posting

    async def hold(self, admission: Admission, what: str) -> None:
        """Wait (interruptibly) as the admission says; explain waits longer than a second."""
        wait = admission.wait_s
        if wait > self.max_wait_s or wait > 1.0:
            sentence = wait_sentence(
                reason=admission.reason,
                what=what,
                wait_s=wait,
                bucket=admission.bucket,
                used=admission.used,
                cap=admission.cap,
                now=self.host.now(),
            )
            if wait > self.max_wait_s:
                raise RuntimeFailure(
                    f"{sentence}; refusing to wait longer than [limits] max_wait_s = "
                    f"{self.max_wait_s:g} s",
                    code="RATE_WAIT_TOO_LONG",
                )
            data = {
                "wait_s": round(wait, 3),
                "reason": admission.reason,
                "bucket": admission.bucket,
                "used": admission.used,
                "limit": admission.cap,
                "request": what,
            }
            self.host.bus.publish(
                Decision(
                    layer=self.name,
                    action="wait",
                    code=WAIT_CODES[admission.reason],
                    sentence=sentence,
                    data=data,
                )
            )
        await self.interrupter.sleep(wait)

    def snapshot(self, *, wait: bool = True) -> dict[str, Any]:
        """Budget use for ticks.jsonl and `perpbot status` (the ``rate`` section).

        ``wait=True`` reads the store (it may wait for another process's lock: not on the
        run's event loop); ``wait=False`` answers from this process's last transaction, with
        the block time the store tells without waiting. Once closed, as last seen."""
        host = self.host
        if self.closed:
            state = host.mirror
        elif wait:
            state = host.store.read()
        else:
            state = HostState.from_dict(host.mirror.to_dict())
            blocked = host.store.blocked_until()
            known = (state.blocked_until, state.banned_until, state.orders_blocked_until)
            if blocked > max(known):  # (another process's block, of whichever kind)
                state.blocked_until = blocked
        now = host.now()
        snap = budget.snapshot(state, now, host.policy, host.key_id, self.description)
        main = budget.main_weight(state)
        snap["reserve"] = reserve_status(main, now, host.policy) if main is not None else {}
        if self.connections is not None:  # new stream connections per IP (the streams)
            snap["connections"] = self.connections.status(state, now)
        return snap

    def close(self) -> None:
        """Let go of the shared store (its connections, or its listener thread); any request
        after this is refused."""
        if not self.closed:
            self.closed = True
            self.host.close()
