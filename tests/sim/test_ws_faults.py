"""Stream faults and Binance's connection rules, observed by raw clients and ccxt.pro."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from perpbot.sim import SimHandle
from perpbot.sim.ws_config import WsConfig
from tests.sim.conftest import BTC, make_async, quiet_config
from tests.sim.ws_support import control, make_pro, next_event, next_json, silent_for, ws_url

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def trader(sim: SimHandle) -> AsyncIterator[Any]:
    key, secret = sim.create_account()
    ex = make_async(sim, key, secret)
    await ex.load_markets()
    try:
        yield ex
    finally:
        await ex.close()


async def _trade_ids(ws: aiohttp.ClientWebSocketResponse, n: int) -> list[int]:
    return [(await next_event(ws, "trade"))["t"] for _ in range(n)]


async def _print_trades(trader: Any, n: int) -> None:
    for _ in range(n):
        await trader.create_order(BTC, "market", "buy", 0.002)


async def test_drop_duplicate_and_reorder_events(
    sim: SimHandle, session: aiohttp.ClientSession, trader: Any
) -> None:
    async with session.ws_connect(ws_url(sim, "/ws/btcusdt@trade")) as ws:
        await _print_trades(trader, 1)
        first = (await _trade_ids(ws, 1))[0]
        sim.set_faults({"streams": {"drop_rate": 1.0, "count": 1}})
        await _print_trades(trader, 2)
        assert await _trade_ids(ws, 1) == [first + 2]  # first + 1 was dropped
        sim.set_faults({"streams": {"duplicate_rate": 1.0, "count": 1}})
        await _print_trades(trader, 2)
        assert await _trade_ids(ws, 3) == [first + 3, first + 3, first + 4]
        sim.set_faults({"streams": {"reorder_rate": 1.0, "count": 1}})
        await _print_trades(trader, 3)
        assert await _trade_ids(ws, 3) == [first + 6, first + 5, first + 7]
        sim.set_faults({"streams": {"drop_rate": 1.0, "scope": "user"}})  # not this stream
        await _print_trades(trader, 1)
        assert await _trade_ids(ws, 1) == [first + 8]
    counters = (await control(session, sim, "/__sim/ws"))["counters"]
    assert (counters["events_dropped"], counters["events_duplicated"]) == (1, 1)
    assert counters["events_reordered"] == 1


async def test_delay_burst_and_stall(
    sim: SimHandle, session: aiohttp.ClientSession, trader: Any
) -> None:
    async with session.ws_connect(ws_url(sim, "/ws/btcusdt@trade")) as ws:
        sim.set_faults({"streams": {"delay_ms": 400}})
        started = time.monotonic()
        await _print_trades(trader, 1)
        await _trade_ids(ws, 1)
        assert time.monotonic() - started >= 0.38
        sim.set_faults({"streams": {"burst_ms": 500}})

        async def arrivals() -> list[float]:
            times = []
            for _ in range(3):
                await _trade_ids(ws, 1)
                times.append(time.monotonic() * 1000.0)
            return times

        reader = asyncio.create_task(arrivals())
        printed: list[tuple[float, float]] = []  # (asked, answered), ms
        for _ in range(3):  # printed 150 ms apart ...
            asked = time.monotonic() * 1000.0
            await _print_trades(trader, 1)
            printed.append((asked, time.monotonic() * 1000.0))
            await asyncio.sleep(0.15)
        arrived = await reader
        # ... held until the next multiple of 500 ms after each print (the simulator's release
        # times, on the monotonic clock it shares with this test), and not delivered before
        (conn,) = (await control(session, sim, "/__sim/ws"))["connections"]
        due = conn["released_ms"][-3:]
        for (asked, answered), release, at in zip(printed, due, arrived, strict=True):
            assert release % 500 == 0, due
            assert math.ceil(asked / 500) * 500 <= release <= math.ceil(answered / 500) * 500
            assert at >= release, (at, release)
        sim.set_faults({"streams": {"stall": True}})
        await _print_trades(trader, 2)
        assert await silent_for(ws, 0.6)
        assert not ws.closed  # open but silent: only a staleness check notices
        sim.set_faults({})
        await _print_trades(trader, 1)
        assert len(await _trade_ids(ws, 1)) == 1


async def test_abrupt_close_1006_and_ccxt_pro_reconnects(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(ws_url(sim, "/ws/btcusdt@bookTicker")) as ws:
        await next_event(ws, "bookTicker")
        assert (await control(session, sim, "/__sim/ws/close", {"code": 1006}))["closed"] == 1
        msg = await ws.receive(timeout=3)
        assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        assert ws.close_code in (None, 1006)
    pro = make_pro(sim)
    try:
        await pro.load_markets()
        await asyncio.wait_for(pro.watch_mark_price(BTC), 5)
        watcher = asyncio.create_task(pro.watch_mark_price(BTC))
        await asyncio.sleep(0.1)
        await control(session, sim, "/__sim/ws/close", {"code": 1006, "scope": "market"})
        with pytest.raises(Exception):  # noqa: B017 - ccxt.pro's NetworkError
            await asyncio.wait_for(watcher, 5)
        mark = await asyncio.wait_for(pro.watch_mark_price(BTC), 5)  # a fresh connection
        assert mark["symbol"] == BTC
    finally:
        await pro.close()


async def test_refusal_window_and_forced_rotation(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    await control(session, sim, "/__sim/ws/refuse", {"ms": 400})
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await session.ws_connect(ws_url(sim, "/ws/btcusdt@bookTicker"))
    assert exc.value.status == 503
    await control(session, sim, "/__sim/ws/refuse", {"ms": 1500, "status": 429})
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await session.ws_connect(ws_url(sim, "/ws/btcusdt@bookTicker"))
    assert exc.value.status == 429 and exc.value.headers["Retry-After"] == "2"  # 1.5 s, ceil
    await control(session, sim, "/__sim/ws/refuse", {"ms": 400})
    await asyncio.sleep(0.45)
    async with session.ws_connect(ws_url(sim, "/ws/btcusdt@bookTicker")) as ws:
        await next_event(ws, "bookTicker")
        assert (await control(session, sim, "/__sim/ws/rotate", {}))["closed"] == 1
        msg = await ws.receive(timeout=3)
        assert msg.type == aiohttp.WSMsgType.CLOSE and msg.data == 1001
    sim.set_faults({"streams": {"refuse_connections": True}})
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await session.ws_connect(ws_url(sim, "/ws/btcusdt@bookTicker"))


@pytest.fixture
def strict_sim(sim_factory: Callable[..., SimHandle]) -> SimHandle:
    ws = WsConfig(
        max_connections_per_window=4,
        max_streams_per_connection=3,
        max_connection_s=600,
        ping_interval_s=0.3,
        pong_timeout_s=1.0,
    )
    return sim_factory(quiet_config(ws=ws))


async def test_connection_rules(strict_sim: SimHandle, session: aiohttp.ClientSession) -> None:
    sim = strict_sim
    async with session.ws_connect(ws_url(sim, "/ws"), autoping=False) as ws:
        params = ["btcusdt@trade", "btcusdt@aggTrade", "ethusdt@trade", "ethusdt@aggTrade"]
        await ws.send_json({"method": "SUBSCRIBE", "params": params, "id": 1})
        assert (await next_json(ws))["error"]["code"] == 2  # 4 streams > the cap of 3
        msg = await ws.receive(timeout=2)  # the server pings every ping_interval_s
        assert msg.type == aiohttp.WSMsgType.PING
        await ws.pong(msg.data)
    async with session.ws_connect(ws_url(sim, "/ws")) as ws:
        for i in range(11):  # 10 messages per second are allowed, the 11th closes
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": i})
        while True:
            msg = await ws.receive(timeout=3)
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
        assert ws.close_code == 1008
    async with session.ws_connect(ws_url(sim, "/ws/btcusdt@bookTicker")) as ws:
        sim.advance(600_000)  # the (compressed) 24 h limit on the simulator clock
        msg = await ws.receive(timeout=3)
        while msg.type == aiohttp.WSMsgType.TEXT:
            msg = await ws.receive(timeout=3)
        assert ws.close_code == 1001
    async with session.ws_connect(ws_url(sim, "/ws"), autoping=False) as ws:
        while True:  # never answer the server's pings
            msg = await ws.receive(timeout=3)
            if msg.type != aiohttp.WSMsgType.PING:
                break
        assert ws.close_code == 1008
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:  # 4 per window per IP
        await session.ws_connect(ws_url(sim, "/ws"))
    assert exc.value.status == 429
