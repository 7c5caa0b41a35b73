"""Scopes on a hedge-mode account judge what goes on the wire, positionSide included.

A profile holding ``reduce`` but not ``trade`` may close a side (a SELL LONG, a BUY SHORT:
hedge mode sends no reduceOnly) up to what that side holds, and may not open one (a SELL
SHORT opens the short even while the account is net long). Denials never reach the
simulator (its request counter does not move); its own positions are the truth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from perpbot.app.connect import Connection, connect
from perpbot.client.request import OrderSpec
from perpbot.config import ExchangeSection
from perpbot.errors import PermissionDenied
from perpbot.events import EventBus
from tests.integration.hedge_support import plain_ccxt, sides
from tests.keys_support.profiles import store

BTC = "BTC/USDT:USDT"
TRADE = {"run": {"read", "trade", "cancel"}}
REDUCE = {"run": {"read", "reduce", "cancel"}}


pytestmark = pytest.mark.usefixtures("memory_keyring")  # stored profiles, in memory


@pytest.fixture
async def hedge_account(sim: Any) -> AsyncIterator[tuple[Any, str, list[Connection]]]:
    key, secret = sim.create_account()
    plain_ccxt(sim, key, secret).fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    conns: list[Connection] = []

    async def open_as(profile: str, commands: dict[str, set[str]]) -> Connection:
        store(profile, key, secret, commands=commands)
        conn = await connect(
            ExchangeSection(id="sim", url=sim.base_url, profile=profile),
            command="run",
            run_id=f"test-{profile}",
            bus=EventBus(),
        )
        conns.append(conn)
        return conn

    trader = await open_as("trader", TRADE)
    trader.setup.account.hedged = True  # as a run reads it at start
    await trader.client.create_order(OrderSpec(BTC, "buy", "market", 0.01, position_side="LONG"))
    unwind = await open_as("unwind", REDUCE)
    yield sim, key, [trader, unwind]
    for conn in conns:
        await conn.close()


def requests(sim: Any) -> int:
    return int(sim.state()["counters"]["requests"])


async def test_a_reduce_grant_closes_a_long_side_and_cannot_open_a_short(
    hedge_account: tuple[Any, str, list[Connection]],
) -> None:
    sim, key, (_, unwind) = hedge_account
    client = unwind.client
    assert sides(sim, key) == {"LONG": 0.01}
    await unwind.setup.account.refresh(client, [BTC])  # the positions say hedge mode too
    assert unwind.setup.account.hedged is True
    assert unwind.setup.account.position(BTC, "LONG") == pytest.approx(0.01)

    for spec, code in [
        (OrderSpec(BTC, "sell", "market", 0.01, position_side="SHORT"), "SCOPE_REDUCE_ONLY"),
        (OrderSpec(BTC, "buy", "market", 0.01, position_side="LONG"), "SCOPE_REDUCE_ONLY"),
        # a BUY SHORT closes, but there is no short to close
        (OrderSpec(BTC, "buy", "market", 0.01, position_side="SHORT"), "SCOPE_REDUCE_EXCEEDS"),
        # more than the LONG side holds
        (OrderSpec(BTC, "sell", "market", 0.02, position_side="LONG"), "SCOPE_REDUCE_EXCEEDS"),
    ]:
        before = requests(sim)
        with pytest.raises(PermissionDenied) as info:
            await client.create_order(spec)
        assert info.value.code == code, (spec, info.value.message)
        assert requests(sim) == before, "a denied order must not reach the simulator"
    assert "positionSide SHORT" in str(
        await _denied(client, OrderSpec(BTC, "sell", "market", 0.01, position_side="SHORT"))
    )
    assert sides(sim, key) == {"LONG": 0.01}

    await client.create_order(OrderSpec(BTC, "sell", "market", 0.01, position_side="LONG"))
    assert not any(sides(sim, key).values())


async def _denied(client: Any, spec: OrderSpec) -> str:
    with pytest.raises(PermissionDenied) as info:
        await client.create_order(spec)
    return info.value.message
