"""User data stream over real WebSockets: listenKeys, events, and agreement with REST."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest

from perpbot.sim import SimHandle
from perpbot.sim.config import FundingConfig
from tests.sim.conftest import BTC, make_async, quiet_config
from tests.sim.ws_support import (
    control,
    make_pro,
    next_event,
    next_json,
    private_after,
    silent_for,
    until_connected,
    ws_url,
)

pytestmark = pytest.mark.asyncio
LISTEN_KEY = "/fapi/v1/listenKey"


async def take_queue_ahead(sim: SimHandle, taker: Any, order_id: str) -> None:
    """A resting order at the touch waits behind the crowd's displayed size there (FIFO,
    as on Binance): a taker buys that size first, so the next buy fills the order."""
    record = next(o for o in sim.state()["open_orders"] if str(o["orderId"]) == order_id)
    ahead = round(float(record["queueAhead"]), 3)
    if ahead > 0:
        await taker.create_order(BTC, "market", "buy", ahead)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def _key(session: aiohttp.ClientSession, sim: SimHandle, method: str, api_key: str) -> Any:
    async with session.request(
        method, sim.base_url + LISTEN_KEY, headers={"X-MBX-APIKEY": api_key}
    ) as resp:
        return resp.status, await resp.json()


async def test_listen_key_lifecycle_on_the_sim_clock(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    key, _ = sim.create_account()
    status, body = await _key(session, sim, "POST", key)
    assert status == 200
    lk = body["listenKey"]
    assert (await _key(session, sim, "POST", key))[1]["listenKey"] == lk  # same while active
    sim.advance(50 * 60_000)
    assert (await _key(session, sim, "PUT", key))[0] == 200  # keepalive: 60 min from now
    sim.advance(50 * 60_000)
    assert (await _key(session, sim, "PUT", key))[0] == 200
    sim.advance(60 * 60_000 + 1)
    status, body = await _key(session, sim, "PUT", key)
    assert (status, body["code"]) == (400, -1125)
    status, body = await _key(session, sim, "POST", key)
    assert body["listenKey"] != lk  # a new key after expiry
    assert (await _key(session, sim, "DELETE", key)) == (200, {})
    assert (await _key(session, sim, "PUT", key))[1]["code"] == -1125
    assert (await _key(session, sim, "POST", "nope"))[1]["code"] == -2015
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await session.ws_connect(ws_url(sim, "/private/ws?listenKey=" + lk))
    assert exc.value.status == 400


async def test_expired_key_gets_listen_key_expired_and_a_close(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    key, _ = sim.create_account()
    lk = (await _key(session, sim, "POST", key))[1]["listenKey"]
    async with session.ws_connect(ws_url(sim, "/private/ws?listenKey=" + lk)) as ws:
        sim.advance(3_600_001)
        event = await next_event(ws, "listenKeyExpired")
        assert event["listenKey"] == lk
        msg = await ws.receive(timeout=3)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
        await session.ws_connect(ws_url(sim, "/private/ws?listenKey=" + lk))
    assert exc.value.status == 400
    lk = (await _key(session, sim, "POST", key))[1]["listenKey"]
    async with session.ws_connect(ws_url(sim, f"/ws/{lk}")) as ws:  # the legacy route
        assert (await _key(session, sim, "DELETE", key)) == (200, {})
        msg = await ws.receive(timeout=3)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_a_silently_dropped_key_is_unknown_and_its_connection_carries_nothing(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    """The fault for a lost ``listenKeyExpired``: the key is gone (PUT -1125) with no event
    and no close; its connection stays open and silent, also once a new key streams."""
    key, secret = sim.create_account()
    rest = make_async(sim, key, secret)
    try:
        await rest.load_markets()
        lk = (await _key(session, sim, "POST", key))[1]["listenKey"]
        assert (await _key(session, sim, "PUT", key))[0] == 200
        async with session.ws_connect(ws_url(sim, "/private/ws?listenKey=" + lk)) as old:
            body = {"silent": True}
            assert (await control(session, sim, "/__sim/ws/expire_listen_keys", body)) == {
                "expired": 1
            }
            status, answer = await _key(session, sim, "PUT", key)
            assert (status, answer["code"]) == (400, -1125)
            await rest.create_order(BTC, "market", "buy", 0.01)
            assert await silent_for(old, 0.5)  # no listenKeyExpired, no order event
            assert not old.closed
            new_key = (await _key(session, sim, "POST", key))[1]["listenKey"]
            assert new_key != lk
            async with session.ws_connect(ws_url(sim, "/private/ws?listenKey=" + new_key)) as ws:
                await rest.create_order(BTC, "market", "sell", 0.01)
                assert (await next_event(ws, "ORDER_TRADE_UPDATE"))["o"]["S"] == "SELL"
                assert await silent_for(old, 0.5)  # the dead key's connection: nothing
        snapshot = await control(session, sim, "/__sim/ws")
        assert snapshot["listen_key_counters"] == {
            "created": 2, "renewed": 0, "kept_alive": 1, "unknown": 1,
            "deleted": 0, "expired": 0, "forgotten": 1,
        }  # fmt: skip
        assert snapshot["counters"]["closed_by_server"] == 0
        with pytest.raises(aiohttp.WSServerHandshakeError) as exc:
            await session.ws_connect(ws_url(sim, "/private/ws?listenKey=" + lk))
        assert exc.value.status == 400
        with pytest.raises(AssertionError):
            await control(session, sim, "/__sim/ws/expire_listen_keys", {"silent": "yes"})
    finally:
        await rest.close()


async def test_order_trade_update_for_partial_fills_and_account_events(
    sim_factory: Callable[..., SimHandle], session: aiohttp.ClientSession
) -> None:
    # funding every 30 s at a fixed rate (Binance: 8 h from the premium index)
    sim = sim_factory(quiet_config(funding=FundingConfig(interval_s=30, rate=0.0001)))
    maker_key, maker_secret = sim.create_account()
    taker_key, taker_secret = sim.create_account()
    maker = make_async(sim, maker_key, maker_secret)
    taker = make_async(sim, taker_key, taker_secret)
    try:
        await maker.load_markets()
        await taker.load_markets()
        lk = (await _key(session, sim, "POST", maker_key))[1]["listenKey"]
        async with session.ws_connect(ws_url(sim, "/private/ws?listenKey=" + lk)) as ws:
            order = await maker.create_order(BTC, "limit", "sell", 0.05, 60000.0)  # rests
            new = await next_event(ws, "ORDER_TRADE_UPDATE")
            assert (new["o"]["x"], new["o"]["X"], new["o"]["i"]) == ("NEW", "NEW", int(order["id"]))
            await take_queue_ahead(sim, taker, order["id"])
            await taker.create_order(BTC, "market", "buy", 0.02)
            lite = await next_event(ws, "TRADE_LITE")
            fill = await next_event(ws, "ORDER_TRADE_UPDATE")
            acct = await next_event(ws, "ACCOUNT_UPDATE")
            truth = sim.state()
            trade = next(t for t in truth["trades"] if t["orderId"] == int(order["id"]))
            o = fill["o"]
            assert (o["x"], o["X"], o["l"], o["z"], o["L"]) == (
                "TRADE", "PARTIALLY_FILLED", "0.020", "0.020", "60000.00"
            )  # fmt: skip
            assert o["m"] is True and o["t"] == trade["id"] == lite["t"]
            assert o["n"] == trade["commission"] and o["rp"] == trade["realizedPnl"]
            assert acct["a"]["m"] == "ORDER"
            assert acct["a"]["P"][0]["pa"] == "-0.020"
            await taker.create_order(BTC, "market", "buy", 0.03)
            fill = await next_event(ws, "ORDER_TRADE_UPDATE")
            assert (fill["o"]["X"], fill["o"]["l"], fill["o"]["z"]) == ("FILLED", "0.030", "0.050")
            await maker.set_leverage(7, BTC)
            config = await next_event(ws, "ACCOUNT_CONFIG_UPDATE")
            assert config["ac"] == {"s": "BTCUSDT", "l": 7}
            sim.advance(30_000)  # past the accelerated funding time
            funding = await next_event(ws, "ACCOUNT_UPDATE")
            assert funding["a"]["m"] == "FUNDING_FEE"
            second = await maker.create_order(BTC, "limit", "buy", 0.01, 59000.0)
            await next_event(ws, "ORDER_TRADE_UPDATE")
            await maker.cancel_order(second["id"], BTC)
            cancel = await next_event(ws, "ORDER_TRADE_UPDATE")
            assert (cancel["o"]["x"], cancel["o"]["X"]) == ("CANCELED", "CANCELED")
    finally:
        await maker.close()
        await taker.close()


async def test_margin_call_then_liquidation_events(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    key, secret = sim.create_account(balance=300.0)
    rest = make_async(sim, key, secret)
    try:
        await rest.load_markets()
        await rest.set_leverage(50, BTC)
        await rest.create_order(BTC, "market", "buy", 0.2)
        lk = (await _key(session, sim, "POST", key))[1]["listenKey"]
        async with session.ws_connect(ws_url(sim, "/private/ws?listenKey=" + lk)) as ws:
            sim.jump("BTCUSDT", -2.0)
            call = await next_event(ws, "MARGIN_CALL", timeout=4)
            assert call["p"][0]["s"] == "BTCUSDT" and call["p"][0]["pa"] == "0.200"
            sim.jump("BTCUSDT", -3.0)  # below maintenance: the forced close
            forced = (await next_event(ws, "ORDER_TRADE_UPDATE"))["o"]
            assert forced["c"].startswith("autoclose-")
            assert (forced["x"], forced["X"], forced["ot"]) == (
                "CALCULATED",
                "FILLED",
                "LIQUIDATION",
            )
            clear = await next_event(ws, "ACCOUNT_UPDATE")
            while clear["a"]["m"] != "INSURANCE_CLEAR":
                clear = await next_event(ws, "ACCOUNT_UPDATE")
            account = await rest.fapiPrivateV3GetAccount()
            assert clear["a"]["B"][0]["wb"] == account["assets"][0]["walletBalance"]
            assert clear["a"]["P"][0]["pa"] == "0.000"
    finally:
        await rest.close()


async def test_watch_streams_agree_with_rest_after_fills(sim: SimHandle) -> None:
    key, secret = sim.create_account()
    other_key, other_secret = sim.create_account()
    pro = make_pro(sim, key, secret)
    other = make_async(sim, other_key, other_secret)
    try:
        await pro.load_markets()
        await other.load_markets()
        orders_w = asyncio.create_task(pro.watch_orders(BTC))
        trades_w = asyncio.create_task(pro.watch_my_trades(BTC))
        balance_w = asyncio.create_task(pro.watch_balance())
        positions = await pro.watch_positions([BTC])  # REST snapshot first
        await until_connected(sim, private_after(0))
        resting = await pro.create_order(BTC, "limit", "sell", 0.04, 60000.0)
        await take_queue_ahead(sim, other, resting["id"])
        await other.create_order(BTC, "market", "buy", 0.01)  # partial fill of ours
        await pro.create_order(BTC, "market", "buy", 0.03)
        await other.create_order(BTC, "market", "buy", 0.03)  # the rest of ours
        await asyncio.wait_for(asyncio.gather(orders_w, trades_w, balance_w), 5)
        await asyncio.sleep(0.5)  # let every event of the series arrive
        # what the streams have delivered so far, as ccxt.pro keeps it
        orders, my_trades = list(pro.orders), list(pro.myTrades)
        balance = pro.balance["linear"]
        positions = list(pro.positions["linear"])
        rest_order = await pro.fetch_order(resting["id"], BTC)
        streamed = next(o for o in orders if o["id"] == resting["id"])
        # partially filled by `other`, then expired by our own market buy (self-trade)
        assert (streamed["status"], streamed["filled"]) == ("expired", 0.01)
        assert (streamed["status"], streamed["filled"]) == (
            rest_order["status"],
            rest_order["filled"],
        )
        rest_trades = await pro.fetch_my_trades(BTC)
        assert sorted(t["id"] for t in my_trades) == sorted(t["id"] for t in rest_trades)
        rest_positions = await pro.fetch_positions([BTC])
        # ccxt.pro caches one entry per side and keeps the stale short after the flip to
        # long (one-way mode); the most recently updated entry is the current position
        pos = [p for p in positions if p["symbol"] == BTC][-1]
        assert pos["contracts"] == rest_positions[0]["contracts"]
        assert pos["entryPrice"] == rest_positions[0]["entryPrice"]
        assert pos["side"] == rest_positions[0]["side"]
        # the stream's balance is the wallet balance ("wb"); ccxt's REST total is the margin
        # balance (wallet + unrealised PnL, which moves with the mark), so the stream is
        # compared with the wallet balance the same REST answer carries
        rest_balance = await pro.fetch_balance()
        usdt = next(a for a in rest_balance["info"]["assets"] if a["asset"] == "USDT")
        assert balance["USDT"]["total"] == float(usdt["walletBalance"])
    finally:
        await pro.close()
        await other.close()


async def test_ccxt_pro_recreates_after_listen_key_expiry(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    key, secret = sim.create_account()
    pro = make_pro(sim, key, secret)
    try:
        await pro.load_markets()
        watcher = asyncio.create_task(pro.watch_orders(BTC))
        conns = await until_connected(sim, private_after(0))
        first = max(c["id"] for c in conns if c["private"])
        first_key = pro.options["linear"]["listenKey"]
        assert (await control(session, sim, "/__sim/ws/expire_listen_keys", {}))["expired"] == 1
        with pytest.raises(Exception):  # noqa: B017 - ccxt raises NetworkError on the close
            await asyncio.wait_for(watcher, 5)
        pro.options["linear"]["lastAuthenticatedTime"] = 0  # what a client does on expiry
        watcher = asyncio.create_task(pro.watch_orders(BTC))
        await until_connected(sim, private_after(first))  # a new connection, new key
        assert pro.options["linear"]["listenKey"] != first_key
        placed = await pro.create_order(BTC, "market", "buy", 0.01)
        orders = await asyncio.wait_for(watcher, 5)
        assert orders[-1]["id"] == placed["id"]
    finally:
        await pro.close()


async def test_events_filter_and_combined_user_stream(
    sim: SimHandle, session: aiohttp.ClientSession
) -> None:
    key, secret = sim.create_account()
    rest = make_async(sim, key, secret)
    try:
        await rest.load_markets()
        lk = (await _key(session, sim, "POST", key))[1]["listenKey"]
        filtered = ws_url(sim, f"/private/ws?listenKey={lk}&events=ACCOUNT_CONFIG_UPDATE")
        async with (
            session.ws_connect(filtered) as only_config,
            session.ws_connect(ws_url(sim, f"/stream?streams={lk}")) as combined,
        ):
            await rest.create_order(BTC, "market", "buy", 0.01)
            await rest.set_leverage(9, BTC)
            body = await next_json(combined)
            assert body["stream"] == lk and body["data"]["e"] == "ORDER_TRADE_UPDATE"
            assert (await next_json(only_config))["e"] == "ACCOUNT_CONFIG_UPDATE"
            assert await silent_for(only_config, 0.3)
    finally:
        await rest.close()
