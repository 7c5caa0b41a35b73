"""The RateLimiter layer: one shared, header-corrected, explained budget per exchange host.

Three parts work together:

- ``HttpBudget`` (hooks on the transport, ``observers.before``/``after``) charges every
  actual HTTP request its Binance weight and order count, so retries and ccxt methods that
  make several requests are all counted, and reads every response's usage headers, 429s
  and 418s into the shared state;
- ``RulesKeeper`` keeps the budget's rules current (exchangeInfo, else ``[limits]``);
- this layer holds a request back *before* ccxt signs it: long waits happen here, never
  inside ccxt, where a signed timestamp would age past ``recvWindow``. When the hook finds
  no room it raises ``RateWait`` before anything is sent; the layer waits (through the
  interrupter, so a stop or the kill switch cuts it short at once) and sends it anew.

Every wait longer than a second is a ``wait`` Decision with a reason code and a sentence.
"""

from __future__ import annotations

import math
from typing import Any

from perpbot.client.pipeline import CallNext
from perpbot.client.ratelimit.explain import wait_sentence
from perpbot.client.ratelimit.hooks import HttpBudget, RateWait
from perpbot.client.ratelimit.host import LAYER, HostBudget
from perpbot.client.ratelimit.rules_keeper import RulesKeeper
from perpbot.client.ratelimit.state import Grant
from perpbot.client.request import Request
from perpbot.client.waits import Interrupter
from perpbot.errors import RuntimeFailure
from perpbot.events import Decision

WAIT_CODES = {
    "ban": "RATE_WAIT_BANNED",
    "retry_after": "RATE_WAIT_RETRY_AFTER",
    "budget": "RATE_WAIT_BUDGET",
    "probe": "RATE_WAIT_PROBE",
    "refresh": "RATE_WAIT_REFRESH",
}

__all__ = ["RateLimiter", "RateWait"]


class RateLimiter:
    name = LAYER

    def __init__(
        self,
        host: HostBudget,
        rules: RulesKeeper,
        interrupter: Interrupter,
        *,
        max_wait_s: float,
        description: str,
    ) -> None:
        self.host = host
        self.rules = rules
        self.interrupter = interrupter
        self.max_wait_s = max_wait_s
        self.description = description
        self.http = HttpBudget(host, rules, interrupter)
        # when the gate has nothing to do: from the end of any block or ban until the rules
        # next fall due, as of the last transaction (made anew after each one)
        self._open = (math.inf, -math.inf)
        self._closed = False
        host.on_txn(self._reopen)
        self._reopen()
        exchange = host.exchange
        exchange.enableLastJsonResponse = True  # the load_markets response carries rateLimits
        exchange.perpbot_observers.add_before(self.http.before_http)
        exchange.perpbot_observers.after.append(self.http.after_http)

    @property
    def key_id(self) -> str:
        return self.host.key_id

    def now(self) -> float:
        return self.host.now()

    async def __call__(self, request: Request, call_next: CallNext) -> Any:
        while True:
            opens, closes = self._open
            if not opens <= self.host.now() < closes and self._gated(request):
                await self._gate(request, call_next)
            try:
                result = await call_next(request)
            except RateWait as held:
                self._release(request)
                await self.hold(held.grant, held.what)
                continue
            except BaseException:
                self._release(request)
                raise
            if len(request.http) > 1:  # (one answered request has settled its one charge)
                self._release(request)
            if request.method == "load_markets":
                self.rules.from_markets(request)
            return result

    def _release(self, request: Request) -> None:
        """Release what the request's HTTP requests that had no answer still hold."""
        for record in request.http:
            if record.charge is not None:
                self.http.forget(request)
                return

    def _reopen(self) -> None:
        if self._closed:
            return
        m, every = self.host.mirror, self.rules.every
        due = math.inf if every is None else (math.floor(m.rules_checked_at / every) + 1) * every
        self._open = (max(m.banned_until, m.blocked_until), due)

    def _gated(self, request: Request) -> bool:
        """Whether ``_gate`` has anything to do, outside the window the mirror leaves open."""
        if self._closed:
            raise RuntimeFailure(
                f"{request.describe()}: this client is closed (its shared rate budget with it)",
                code="CLIENT_CLOSED",
            )
        now, m = self.host.now(), self.host.mirror
        if m.banned_until > now or m.blocked_until > now:
            return True
        return request.method != "load_markets" and self.rules.due(now)

    async def _gate(self, request: Request, call_next: CallNext) -> None:
        """Wait out bans and Retry-After, and re-read due rules, before ccxt signs."""
        while True:
            now = self.host.now()
            m = self.host.mirror
            # (a block another process met shows in the HTTP hook, which then holds the
            # request back and refreshes the mirror: no extra read of the store here)
            blocked = max(m.banned_until, m.blocked_until)
            if blocked > now:
                reason = "ban" if m.banned_until > now else "retry_after"
                await self.hold(Grant(blocked - now, reason), request.describe())
                continue
            if request.method != "load_markets" and self.rules.due(now):
                await self.rules.refresh(request, call_next, self.hold)
            return

    async def hold(self, grant: Grant, what: str) -> None:
        """Wait (interruptibly) as the grant says; explain waits longer than a second."""
        wait = grant.wait_s
        if wait > self.max_wait_s or wait > 1.0:
            sentence = wait_sentence(
                grant.reason, what, wait, grant.bucket, grant.used, grant.cap, self.host.now()
            )
            if wait > self.max_wait_s:
                raise RuntimeFailure(
                    f"{sentence}; refusing to wait longer than [limits] max_wait_s = "
                    f"{self.max_wait_s:g} s",
                    code="RATE_WAIT_TOO_LONG",
                )
            data = {
                "wait_s": round(wait, 3),
                "reason": grant.reason,
                "bucket": grant.bucket,
                "used": grant.used,
                "limit": grant.cap,
                "request": what,
            }
            self.host.bus.publish(
                Decision(self.name, "wait", WAIT_CODES[grant.reason], sentence, data)
            )
        await self.interrupter.sleep(wait)

    def snapshot(self) -> dict[str, Any]:
        """Budget use for ticks.jsonl and `perpbot status` (the ``rate`` section); once
        closed, as this process last saw it."""
        from perpbot.client.ratelimit.status import snapshot

        host = self.host
        state = host.mirror if self._closed else host.store.read()
        return snapshot(state, host.now(), host.policy, host.key_id, self.description)

    def close(self) -> None:
        """Let go of the shared store (its connection, flag mapping or listener thread);
        any request after this is refused."""
        if not self._closed:
            self._closed = True
            self._open = (math.inf, -math.inf)  # every request now meets ``_gated``
            self.host.store.close()
