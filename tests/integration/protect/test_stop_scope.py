"""Scope ``stop``: a key granted run without it cannot place a conditional order; nothing
reaches the simulator (its request counter and its algo orders say so)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from perpbot.app.connect import Connection, connect
from perpbot.config import ExchangeSection
from perpbot.errors import PermissionDenied
from perpbot.events import Decision, EventBus
from tests.keys_support.profiles import store

STOP = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "type": "STOP_MARKET",
        "triggerPrice": "1000", "closePosition": "true", "clientAlgoId": "t-stop-1"}  # fmt: skip


pytestmark = pytest.mark.usefixtures("memory_keyring")  # stored profiles, in memory


@pytest.fixture
async def conns() -> AsyncIterator[list[Connection]]:
    made: list[Connection] = []
    yield made
    for c in made:
        await c.close()


async def _connect(sim: Any, profile: str, scopes: set[str], conns: list[Connection],
                   decisions: list[Decision]) -> Connection:  # fmt: skip
    key, secret = sim.create_account()
    store(profile, key, secret, commands={"run": scopes})
    bus = EventBus()
    bus.subscribe(lambda e: decisions.append(e) if isinstance(e, Decision) else None)
    conn = await connect(
        ExchangeSection(id="sim", url=sim.base_url, profile=profile),
        command="run", run_id=f"test-{profile}", bus=bus,
    )  # fmt: skip
    conns.append(conn)
    return conn


async def test_stop_scope_is_needed_and_a_denial_never_reaches_the_exchange(
    sim: Any, conns: list[Connection]
) -> None:
    decisions: list[Decision] = []
    plain = await _connect(sim, "plain", {"read", "trade", "cancel"}, conns, decisions)
    before = sim.state()["counters"]["requests"]
    with pytest.raises(PermissionDenied) as info:
        await plain.client.call("fapiprivate_post_algoorder", dict(STOP), symbol="BTC/USDT:USDT")
    assert info.value.code == "SCOPE_MISSING" and "stop" in info.value.message
    assert "--allow stop" in info.value.message
    assert sim.state()["counters"]["requests"] == before
    assert not sim.state()["algo_orders"]
    assert decisions[-1].action == "deny" and decisions[-1].code == "SCOPE_MISSING"

    granted = await _connect(sim, "stops", {"read", "trade", "cancel", "stop"}, conns, decisions)
    placed = await granted.client.call(
        "fapiprivate_post_algoorder", dict(STOP), symbol="BTC/USDT:USDT"
    )
    assert placed["algoStatus"] == "NEW"
    assert [a["clientAlgoId"] for a in sim.state()["algo_orders"]] == ["t-stop-1"]


async def test_a_stop_outside_the_grants_symbols_is_denied(
    sim: Any, conns: list[Connection]
) -> None:
    decisions: list[Decision] = []
    key, secret = sim.create_account()
    store("eth-only", key, secret, commands={"run": {"read", "trade", "cancel", "stop"}},
          symbols=frozenset({"ETH/USDT:USDT"}))  # fmt: skip
    bus = EventBus()
    bus.subscribe(lambda e: decisions.append(e) if isinstance(e, Decision) else None)
    conn = await connect(
        ExchangeSection(id="sim", url=sim.base_url, profile="eth-only"),
        command="run", run_id="test-eth-only", bus=bus,
    )  # fmt: skip
    conns.append(conn)
    before = sim.state()["counters"]["requests"]
    with pytest.raises(PermissionDenied):
        await conn.client.call("fapiprivate_post_algoorder", dict(STOP), symbol="BTC/USDT:USDT")
    assert sim.state()["counters"]["requests"] == before and not sim.state()["algo_orders"]
