"""A maintenance window: every REST answer is Binance's "System is under maintenance." (ccxt
raises OnMaintenance), streams are closed and refused, resting orders stay and a
countdownCancelAll that lapses inside the window fires. The simulator's state is the truth.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import ccxt
import pytest

from perpbot.sim import SimHandle
from tests.sim.conftest import BTC, make_async
from tests.sim.ws_support import control, ws_url

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def _open(state: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [o for o in state["open_orders"] if o["account"] == key]


async def test_rest_answers_maintenance_and_ccxt_raises_on_maintenance(
    sim: SimHandle, client: Any, session: aiohttp.ClientSession
) -> None:
    key = client.apiKey
    await client.create_order(BTC, "limit", "buy", 0.002, 58000.0)
    before = sim.state()
    window = await control(session, sim, "/__sim/maintenance", {"ms": 60_000})
    assert window["active"] is True and window["until_ms"] == window["started_ms"] + 60_000

    calls = [  # public, signed read, order, cancel, countdown, listen key
        lambda: client.fetch_ticker(BTC),
        lambda: client.fetch_open_orders(BTC),
        lambda: client.create_order(BTC, "limit", "buy", 0.002, 58100.0),
        lambda: client.cancel_all_orders(BTC),
        lambda: client.fapiPrivatePostCountdownCancelAll(
            {"symbol": "BTCUSDT", "countdownTime": 10_000}
        ),
        lambda: client.fapiPrivatePostListenKey(),
    ]
    for call in calls:
        with pytest.raises(ccxt.OnMaintenance, match="System is under maintenance"):
            await call()
    async with session.get(sim.base_url + "/fapi/v1/time") as resp:
        assert resp.status == 503
        assert await resp.json() == {"code": 1, "msg": "System is under maintenance."}

    during = sim.state()
    # nothing was processed or charged: the resting order stands, no order was added
    assert _open(during, key) == _open(before, key)
    assert len(during["orders"]) == len(before["orders"])
    assert during["counters"]["weight_used"] == before["counters"]["weight_used"]
    assert during["maintenance"]["answers"] == len(calls) + 1

    sim.advance(60_000)  # the window's end, on the simulator's clock
    assert sim.state()["maintenance"]["active"] is False
    assert (await client.fetch_ticker(BTC))["last"] > 0
    assert len(await client.fetch_open_orders(BTC)) == 1


async def test_a_countdown_lapsing_inside_the_window_fires_and_prices_stand_still(
    sim: SimHandle, client: Any
) -> None:
    key = client.apiKey
    await client.create_order(BTC, "limit", "buy", 0.002, 58000.0)
    await client.create_order(BTC, "limit", "sell", 0.002, 62000.0)
    await client.fapiPrivatePostCountdownCancelAll({"symbol": "BTCUSDT", "countdownTime": 5_000})
    sim.maintenance(ms=20_000)
    mid = sim.state()["markets"]["BTCUSDT"]["mid"]
    sim.advance(4_000)
    assert len(_open(sim.state(), key)) == 2  # not yet lapsed: resting orders stay
    sim.advance(2_000)
    during = sim.state()
    assert during["maintenance"]["active"] is True
    assert _open(during, key) == []  # lapsed inside the window: the exchange cancelled them
    cancelled = [o for o in during["orders"] if o["account"] == key]
    assert {o["status"] for o in cancelled} == {"CANCELED"}
    assert during["markets"]["BTCUSDT"]["mid"] == mid  # matching halted
    assert not any(a["countdowns"] for a in during["accounts"] if a["api_key"] == key)
    log = [(e["event"], e["time"]) for e in during["countdown_log"] if e["account"] == key]
    (set_at,) = [t for what, t in log if what == "set"]
    assert ("fired", set_at + 5_000) in log  # the countdown log says when it fired
    sim.advance(14_000)
    assert sim.state()["maintenance"]["active"] is False
    assert await client.fetch_open_orders(BTC) == []


async def test_streams_are_closed_and_refused_until_the_window_ends(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(ws_url(sim, "/ws/btcusdt@trade")) as ws:
        window = await control(session, sim, "/__sim/maintenance", {})
        assert window["closed_streams"] == 1 and window["until_ms"] is None
        msg = await ws.receive(timeout=3)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001, msg
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await session.ws_connect(ws_url(sim, "/ws/btcusdt@trade"))
    assert refused.value.status == 503
    assert sim.state()["maintenance"]["refused_streams"] == 1
    ended = await control(session, sim, "/__sim/maintenance", {"active": False})
    assert ended["active"] is False
    async with session.ws_connect(ws_url(sim, "/ws/btcusdt@trade")) as ws:
        assert not ws.closed


async def test_bad_maintenance_requests_are_refused(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    for body in ({"ms": -1}, {"ms": "soon"}, {"active": "yes"}, {"until": 5}):
        async with session.post(sim.base_url + "/__sim/maintenance", json=body) as resp:
            assert resp.status == 400
            assert "error" in await resp.json()
    assert sim.state()["maintenance"]["windows"] == 0


async def test_a_new_client_meets_on_maintenance_at_load_markets(sim: SimHandle) -> None:
    sim.maintenance()
    ex = make_async(sim)
    try:
        with pytest.raises(ccxt.OnMaintenance):
            await ex.load_markets()
    finally:
        await ex.close()
