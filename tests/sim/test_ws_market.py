"""Market streams over real WebSockets: unmodified ccxt.pro and raw clients vs REST truth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from perpbot.sim import SimConfig, SimHandle
from perpbot.sim.config import MarketConfig
from perpbot.sim.ws_config import WsConfig
from tests.sim.conftest import BTC, make_async, quiet_config
from tests.sim.ws_support import (
    control,
    make_pro,
    next_event,
    next_json,
    silent_for,
    subscribed,
    until_connected,
    ws_url,
)

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


@pytest.fixture
async def pro(sim: SimHandle) -> AsyncIterator[Any]:
    ex = make_pro(sim)
    await ex.load_markets()
    try:
        yield ex
    finally:
        await ex.close()


def _book(levels: list[list[float]], n: int) -> list[tuple[float, float]]:
    return [(float(p), float(q)) for p, q, *_ in levels[:n]]


async def test_watch_order_book_stays_equal_to_rest_depth(sim: SimHandle, pro: Any) -> None:
    key, secret = sim.create_account()
    rest = make_async(sim, key, secret)
    try:
        await rest.load_markets()
        book = await pro.watch_order_book(BTC)
        placed = []
        for i, (side, px) in enumerate(
            [("buy", 59990.0), ("sell", 60010.0), ("buy", 59999.9), ("sell", 60003.3)]
        ):
            placed.append(await rest.create_order(BTC, "limit", side, 0.05 + i / 100, px))
            if i == 2:
                sim.advance(1000)  # the crowd re-quotes: every level's size changes
        await rest.cancel_order(placed[0]["id"], BTC)
        for _ in range(2):  # REST snapshots in between must not break the chain
            snap = await rest.fapiPublicGetDepth({"symbol": "BTCUSDT", "limit": 50})
            target = int(snap["lastUpdateId"])
            while book["nonce"] < target:
                book = await asyncio.wait_for(pro.watch_order_book(BTC), 3)
            assert _book(book["bids"], 20) == _book(snap["bids"], 20)
            assert _book(book["asks"], 20) == _book(snap["asks"], 20)
            assert (60010.0, 0.06) in _book(book["asks"], 1000)
            assert all(px != 59990.0 or qty != 0.05 for px, qty in _book(book["bids"], 1000))
            sim.advance(600)
    finally:
        await rest.close()


async def test_ticker_bids_asks_mark_and_ohlcv_match_rest(sim: SimHandle, pro: Any) -> None:
    ticker = await asyncio.wait_for(pro.watch_ticker(BTC), 5)
    rest = make_async(sim)
    try:
        t_rest = await rest.fetch_ticker(BTC)
        assert ticker["last"] == t_rest["last"]
        assert ticker["open"] == t_rest["open"]
        tops = await asyncio.wait_for(pro.watch_bids_asks([BTC]), 5)
        bt = await rest.fapiPublicGetTickerBookTicker({"symbol": "BTCUSDT"})
        assert tops[BTC]["bid"] == float(bt["bidPrice"])
        assert tops[BTC]["ask"] == float(bt["askPrice"])
        mark = await asyncio.wait_for(pro.watch_mark_price(BTC), 5)
        premium = await rest.fapiPublicGetPremiumIndex({"symbol": "BTCUSDT"})
        assert mark["markPrice"] == float(premium["markPrice"])
        assert mark["indexPrice"] == float(premium["indexPrice"])
        assert mark["info"]["r"] == premium["lastFundingRate"]
        assert mark["info"]["T"] == int(premium["nextFundingTime"])
        candles = await asyncio.wait_for(pro.watch_ohlcv(BTC, "1m"), 5)
        rest_candles = await rest.fetch_ohlcv(BTC, "1m", limit=1)
        assert candles[-1][:5] == rest_candles[-1][:5]
    finally:
        await rest.close()


async def test_watch_trades_sees_each_fill_on_the_tape(sim: SimHandle, pro: Any) -> None:
    key, secret = sim.create_account()
    rest = make_async(sim, key, secret)
    try:
        await rest.load_markets()
        watcher = asyncio.create_task(pro.watch_trades(BTC))
        await until_connected(sim, subscribed("btcusdt@trade"))
        await rest.create_order(BTC, "market", "buy", 0.02)
        trades = await asyncio.wait_for(watcher, 5)
        state = sim.state()
        assert trades[-1]["price"] == float(state["trades"][-1]["price"])
        assert trades[-1]["amount"] == 0.02
        assert trades[-1]["side"] == "buy"
    finally:
        await rest.close()


async def test_watch_liquidations_reports_a_forced_close(sim: SimHandle, pro: Any) -> None:
    key, secret = sim.create_account(balance=200.0)
    rest = make_async(sim, key, secret)
    try:
        await rest.load_markets()
        await rest.set_leverage(50, BTC)
        await rest.create_order(BTC, "market", "buy", 0.15)
        watcher = asyncio.create_task(pro.watch_liquidations(BTC))
        await until_connected(sim, subscribed("btcusdt@forceOrder"))
        sim.jump("BTCUSDT", -3)
        liqs = await asyncio.wait_for(watcher, 5)
        truth = sim.state()["liquidations"][-1]
        assert liqs[-1]["contracts"] == float(truth["qty"])
        assert liqs[-1]["price"] == float(truth["price"])
    finally:
        await rest.close()


async def test_routes_and_the_subscribe_protocol(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(ws_url(sim, "/ws/btcusdt@bookTicker")) as ws:
        event = await next_event(ws, "bookTicker")
        assert event["s"] == "BTCUSDT" and float(event["b"]) < float(event["a"])
        await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@markPrice@1s"], "id": 7})
        assert (await next_event(ws, "markPriceUpdate"))["s"] == "ETHUSDT"
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 8})
        body = await next_json(ws)
        while body.get("id") != 8:
            body = await next_json(ws)
        assert sorted(body["result"]) == ["btcusdt@bookTicker", "ethusdt@markPrice@1s"]
        await ws.send_str("{not json")
        body = await next_json(ws)
        while "error" not in body:
            body = await next_json(ws)
        assert body["error"]["code"] == 3
        await ws.send_json({"method": "FLY", "id": 9})
        body = await next_json(ws)
        while body.get("id") != 9:
            body = await next_json(ws)
        assert body["error"]["code"] == 2
    url = ws_url(sim, "/stream?streams=btcusdt@markPrice@1s/ethusdt@depth5@100ms")
    async with session.ws_connect(url) as ws:
        seen = set()
        while len(seen) < 2:
            body = await next_json(ws)
            assert set(body) == {"stream", "data"}
            seen.add(body["stream"])
    # routed paths deliver only their category, silently, as Binance does
    async with session.ws_connect(ws_url(sim, "/public/ws")) as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 1})
        assert await next_json(ws) == {"result": None, "id": 1}
        assert await silent_for(ws, 1.3)
    async with session.ws_connect(ws_url(sim, "/market/ws")) as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 1})
        assert await next_json(ws) == {"result": None, "id": 1}
        assert (await next_event(ws, "markPriceUpdate"))["s"] == "BTCUSDT"
        await ws.send_json({"method": "UNSUBSCRIBE", "params": ["btcusdt@markPrice@1s"], "id": 2})
        body = await next_json(ws)
        while body.get("id") != 2:
            body = await next_json(ws)
        assert body == {"result": None, "id": 2}
        assert await silent_for(ws, 1.3)
    state = await control(session, sim, "/__sim/ws")
    assert state["counters"]["opened"] == 4


async def test_all_market_streams_partial_depth_and_kline_close(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    names = "!markPrice@arr@1s/!ticker@arr/!miniTicker@arr/!bookTicker/btcusdt@depth5@100ms"
    async with session.ws_connect(ws_url(sim, "/stream?streams=" + names)) as ws:
        seen: dict[str, Any] = {}
        while len(seen) < 5:
            body = await next_json(ws)
            seen.setdefault(body["stream"], body["data"])
        assert {m["s"] for m in seen["!markPrice@arr@1s"]} == {"BTCUSDT", "ETHUSDT"}
        assert seen["!ticker@arr"][0]["e"] == "24hrTicker"
        assert seen["!miniTicker@arr"][0]["e"] == "24hrMiniTicker"
        assert seen["!bookTicker"]["e"] == "bookTicker"
        partial = seen["btcusdt@depth5@100ms"]
        assert len(partial["b"]) == len(partial["a"]) == 5
        assert partial["U"] <= partial["u"] and partial["pu"] < partial["u"]
    async with session.ws_connect(ws_url(sim, "/market/ws/btcusdt@kline_1m")) as ws:
        first = (await next_event(ws, "kline"))["k"]
        assert first["x"] is False
        sim.advance(60_000)  # the minute ends: the closed candle, then the new one
        closed = (await next_event(ws, "kline"))["k"]
        assert (closed["t"], closed["x"]) == (first["t"], True)
        current = (await next_event(ws, "kline"))["k"]
        assert (current["t"], current["x"]) == (first["t"] + 60_000, False)


async def test_order_book_chain_survives_a_busy_market(
    sim_factory: Callable[..., SimHandle],
) -> None:
    """Wall clock, moving prices, crowd takers, user orders and foreign REST snapshots."""
    lively = MarketConfig(volatility=0.0005, taker_rate=8.0, history_minutes=30, tick_ms=50)
    sim = sim_factory(SimConfig(seed=11, clock="wall", market=lively))
    key, secret = sim.create_account()
    rest = make_async(sim, key, secret)
    pro = make_pro(sim)
    try:
        await rest.load_markets()
        await pro.load_markets()
        book = await pro.watch_order_book(BTC)
        updates = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 2.0
        while loop.time() < deadline:
            book = await asyncio.wait_for(pro.watch_order_book(BTC), 3)
            updates += 1
            if updates % 5 == 0:
                mid = (book["bids"][0][0] + book["asks"][0][0]) / 2
                await rest.create_order(BTC, "limit", "buy", 0.01, round(mid * 0.999, 1))
                await rest.fapiPublicGetDepth({"symbol": "BTCUSDT", "limit": 5})
        sim.set_faults({"freeze_prices": True})  # the market stops: the books must converge
        snap = await rest.fapiPublicGetDepth({"symbol": "BTCUSDT", "limit": 100})
        while book["nonce"] < int(snap["lastUpdateId"]):
            book = await asyncio.wait_for(pro.watch_order_book(BTC), 3)
        assert updates >= 10
        assert _book(book["bids"], 100) == _book(snap["bids"], 100)
        assert _book(book["asks"], 100) == _book(snap["asks"], 100)
    finally:
        await rest.close()
        await pro.close()


async def test_diff_depth_restates_a_level_only_a_snapshot_saw(
    sim_factory: Callable[..., SimHandle], session: aiohttp.ClientSession
) -> None:
    """An order that rests and is cancelled between two events is in no diff, but a
    snapshot taken meanwhile shows it: the next event must restate that level."""
    sim = sim_factory(quiet_config(ws=WsConfig(flush_ms=1000)))
    key, secret = sim.create_account()
    rest = make_async(sim, key, secret)
    try:
        await rest.load_markets()
        async with session.ws_connect(ws_url(sim, "/ws/btcusdt@depth@100ms")) as ws:
            order = await rest.create_order(BTC, "limit", "buy", 0.05, 59000.0)
            snap = await rest.fapiPublicGetDepth({"symbol": "BTCUSDT", "limit": 1000})
            await rest.cancel_order(order["id"], BTC)
            assert ["59000.00", "0.050"] in snap["bids"]
            bids = {p: q for p, q in snap["bids"]}
            last = int(snap["lastUpdateId"])
            event = await next_event(ws, "depthUpdate")  # Binance's documented sync
            assert event["U"] <= last <= event["u"]
            bids.update({p: q for p, q in event["b"]})
            assert bids["59000.00"] == "0.000"
    finally:
        await rest.close()
