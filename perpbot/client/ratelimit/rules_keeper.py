"""Keeping the budget's rules current: read at connect, re-read every period and after 429s.

The ``load_markets`` response (exchangeInfo) carries ``rateLimits``; after that the rules
are re-read with the same endpoint (weight 1) once per ``[limits] refresh_s`` period, by
one client per host (a lease in the shared state), while every other request waits for
the answer: so a limit the exchange lowered is followed from the next period's first
request. A failed re-read keeps the current rules until the next period.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from perpbot.client.ratelimit import budget
from perpbot.client.ratelimit.host import HostBudget
from perpbot.client.ratelimit.rules import RuleSet, from_exchange_info
from perpbot.client.ratelimit.state import Change, Grant, HostState
from perpbot.client.request import Request

REFRESH_METHOD = "fapipublic_get_exchangeinfo"
REFRESH_LEASE_S = 10.0
Hold = Callable[[Grant, str], Awaitable[None]]


class RulesKeeper:
    def __init__(
        self, host: HostBudget, refresh_s: float, fallback: RuleSet | None, exchange: Any
    ) -> None:
        self.host = host
        self.refresh_s = refresh_s
        self.fallback = fallback
        self.can_refresh = hasattr(exchange, REFRESH_METHOD)
        # the re-read period, or None when this exchange's rules cannot be re-read
        self.every: float | None = refresh_s if self.can_refresh else None
        self._lock: asyncio.Lock | None = None
        now = host.now()
        if fallback is not None:
            host.publish(host.txn(lambda st: budget.apply_rules(st, fallback, now, host.policy)))
        host.txn(lambda st: budget.ensure_key(st, host.key_id))

    def due(self, now: float) -> bool:
        return budget.refresh_due(self.host.mirror, now, self.every)

    def from_markets(self, request: Request) -> None:
        """After load_markets: install the rateLimits of the exchangeInfo it read, if any."""
        if not any(r.path.endswith("/exchangeInfo") and r.status == 200 for r in request.http):
            return  # markets came from ccxt's cache: nothing new was read
        payload = getattr(self.host.exchange, "last_json_response", None)
        self.install(from_exchange_info(payload))

    def install(self, rules: RuleSet | None) -> None:
        host, now = self.host, self.host.now()

        def fn(st: HostState) -> list[Change]:
            st.rules_checked_at, st.refresh_until = now, 0.0
            chosen = rules or self.fallback
            changes = budget.apply_rules(st, chosen, now, host.policy) if chosen else []
            budget.ensure_key(st, host.key_id)
            return changes

        host.publish(host.txn(fn))

    async def refresh(self, request: Request, call_next: Any, hold: Hold) -> None:
        """Re-read exchangeInfo.rateLimits unless someone already did in this period."""
        from perpbot.client.ratelimit.hooks import RateWait

        if self._lock is None:
            self._lock = asyncio.Lock()
        host = self.host
        async with self._lock:
            while True:
                now = host.now()
                verdict = host.txn(lambda st, now=now: self._claim(st, now))
                if verdict == "fresh":
                    return
                if verdict == "busy":  # another process is reading them: use its answer
                    wait = min(0.02, host.mirror.refresh_until - now)
                    await hold(Grant(wait, "refresh"), request.describe())
                    continue
                inner = Request(
                    method=REFRESH_METHOD,
                    command=request.command,
                    profile=request.profile,
                    intent="rate-limit rules",
                    id=host.bus.next_request_id(),
                )
                try:
                    payload = await call_next(inner)
                except RateWait as held:
                    host.txn(_release)
                    await hold(held.grant, held.what)
                    continue
                except Exception:  # keep the current rules until the next period
                    host.txn(lambda st, now=now: _release(st, checked_at=now))
                    return
                except BaseException:  # cancelled: never leave the others waiting on us
                    host.txn(_release)
                    raise
                self.install(from_exchange_info(payload))
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
