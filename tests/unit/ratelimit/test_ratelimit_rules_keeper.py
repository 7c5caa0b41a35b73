"""Keeping rules current: one re-read per period per host, never a dangling lease."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

import pytest

from perpbot.client.request import Request
from perpbot.events import Decision, EventBus
from perpbot.ratelimit.budget import Admission, Policy
from perpbot.ratelimit.host import HostBudget
from perpbot.ratelimit.layer import RulesKeeper
from perpbot.ratelimit.rules import Rule, RuleSet
from perpbot.ratelimit.stores import MemoryStore

PUBLISHED = {
    "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "SECOND", "intervalNum": 2, "limit": 90}
    ]
}


def keeper(host_name: str, fallback: RuleSet | None = None) -> tuple[RulesKeeper, list[Decision]]:
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    exchange = SimpleNamespace(options={}, fapipublic_get_exchangeinfo=None)
    host = HostBudget(
        store=MemoryStore(host_name), policy=Policy(), bus=bus, exchange=exchange, key_id="k"
    )
    return RulesKeeper(host, 2.0, fallback, exchange), seen


async def no_hold(grant: Admission, what: str) -> None:
    await asyncio.sleep(0)


async def test_rereads_once_per_period_and_installs_what_it_read() -> None:
    rules, seen = keeper("rk-1:1")
    calls: list[Request] = []

    async def call_next(request: Request) -> Any:
        calls.append(request)
        return PUBLISHED

    assert rules.due(rules.host.now())
    await rules.refresh(Request("fetch_ticker"), call_next, no_hold)
    await rules.refresh(Request("fetch_ticker"), call_next, no_hold)  # same period: fresh
    assert [c.method for c in calls] == ["fapipublic_get_exchangeinfo"]
    assert calls[0].intent == "rate-limit rules"
    assert not rules.due(rules.host.now())
    assert rules.host.mirror.buckets["weight/2s"].nominal == 90
    assert [d.code for d in seen] == ["RATE_RULES_LOADED"]


async def test_a_cancelled_reread_releases_its_lease_at_once() -> None:
    rules, _ = keeper("rk-2:1")

    async def cancelled(request: Request) -> Any:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await rules.refresh(Request("fetch_ticker"), cancelled, no_hold)
    assert rules.host.store.read().refresh_until == 0.0  # nobody else waits 10 s for us
    assert rules.due(rules.host.now())


async def test_a_failed_reread_keeps_the_rules_until_the_next_period() -> None:
    fallback = RuleSet((Rule("weight", 60, 1000),), "config")
    rules, seen = keeper("rk-3:1", fallback)

    async def down(request: Request) -> Any:
        raise OSError("exchange down")

    await rules.refresh(Request("fetch_ticker"), down, no_hold)
    st = rules.host.store.read()
    assert st.refresh_until == 0.0 and not rules.due(rules.host.now())
    assert st.buckets["weight/60s"].nominal == 1000 and st.rules_source == "config"
    assert "read from [limits] in the strategy" in seen[0].sentence


async def test_setting_up_never_waits_for_a_slow_store() -> None:
    """Connecting (a bot, or `perpbot kill --direct`) queues its set-up transaction: a store
    another process holds delays nothing; the set-up still precedes every later one."""
    released, answered = threading.Event(), threading.Event()

    class SlowStore(MemoryStore):
        def transact(self, fn: Any) -> Any:
            released.wait(10)  # another process's write lock, until the test lets it go
            try:
                return super().transact(fn)
            finally:
                answered.set()

    exchange = SimpleNamespace(options={}, fapipublic_get_exchangeinfo=None)
    host = HostBudget(
        store=SlowStore("rk-4:1"), policy=Policy(), bus=EventBus(), exchange=exchange, key_id="k"
    )
    fallback = RuleSet((Rule("weight", 60, 1000),), "config")
    try:
        rules = RulesKeeper(host, 2.0, fallback, exchange)
        # back while the store still holds its lock: nothing waited for it (had anything,
        # it would be back only once the store had answered, 10 s on)
        assert not answered.is_set()
    finally:
        released.set()
    nominal = await host.transact(lambda st: st.buckets["weight/60s"].nominal)
    assert nominal == 1000 and rules.host.mirror.rules_source == "config"
