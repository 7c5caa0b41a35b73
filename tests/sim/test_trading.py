"""Order entry, matching and order lifecycle, through async ccxt over real HTTP."""

from __future__ import annotations

import ccxt
import pytest

from perpbot.sim import SimHandle
from perpbot.sim.config import MarketConfig

from .conftest import BTC, ETH, make_async, make_sync, quiet_config


@pytest.mark.asyncio
async def test_limit_order_lifecycle(sim: SimHandle, client) -> None:
    order = await client.create_order(BTC, "limit", "buy", 0.01, 59000.123)
    assert order["status"] == "open"
    assert order["price"] == 59000.1  # ccxt rounded to the tick
    assert order["info"]["status"] == "NEW"
    assert order["info"]["timeInForce"] == "GTC"
    fetched = await client.fetch_order(order["id"], BTC)
    assert fetched["clientOrderId"] == order["clientOrderId"]
    by_cid = await client.fetch_order(None, BTC, {"origClientOrderId": order["clientOrderId"]})
    assert by_cid["id"] == order["id"]
    single = await client.fetch_open_order(order["id"], BTC)
    assert single["id"] == order["id"]
    opened = await client.fetch_open_orders(BTC)
    assert [o["id"] for o in opened] == [order["id"]]
    assert [o["id"] for o in await client.fetch_open_orders()] == [order["id"]]
    canceled = await client.cancel_order(order["id"], BTC)
    assert canceled["status"] == "canceled"
    assert await client.fetch_open_orders(BTC) == []
    with pytest.raises(ccxt.OrderNotFound):
        await client.cancel_order(order["id"], BTC)
    record = next(o for o in sim.state()["orders"] if o["orderId"] == int(order["id"]))
    assert record["status"] == "CANCELED"
    assert record["cancelTime"] >= record["time"]


@pytest.mark.asyncio
async def test_market_order_walks_the_book(sim: SimHandle, client) -> None:
    book = await client.fetch_order_book(BTC, 5)
    best_ask = book["asks"][0][0]
    assert best_ask == 60000.0
    order = await client.create_order(BTC, "market", "buy", 3)
    assert order["status"] == "closed"
    assert order["filled"] == 3
    assert order["average"] > best_ask  # consumed several levels
    trades = await client.fetch_my_trades(BTC)
    assert len({t["price"] for t in trades}) > 1
    assert all(t["takerOrMaker"] == "taker" for t in trades)
    assert trades[0]["fee"]["cost"] == pytest.approx(trades[0]["cost"] * 0.0005, rel=1e-6)
    positions = await client.fetch_positions()
    assert positions[0]["contracts"] == 3
    assert positions[0]["side"] == "long"


@pytest.mark.asyncio
async def test_post_only_rejected_when_it_would_cross(sim: SimHandle, client) -> None:
    with pytest.raises(ccxt.OrderNotFillable):
        await client.create_order(
            BTC, "limit", "buy", 0.01, 60000.0, {"postOnly": True, "clientOrderId": "gtx-1"}
        )
    rejected = [o for o in sim.state()["orders"] if o["clientOrderId"] == "gtx-1"]
    assert rejected[0]["status"] == "EXPIRED"
    assert rejected[0]["recorded"] is False
    with pytest.raises(ccxt.OrderNotFound):  # Binance does not record it
        await client.fetch_order(None, BTC, {"origClientOrderId": "gtx-1"})
    ok = await client.create_order(BTC, "limit", "buy", 0.01, 59999.9, {"postOnly": True})
    assert ok["postOnly"] is True
    assert ok["timeInForce"] == "PO"
    assert ok["status"] == "open"


@pytest.mark.asyncio
async def test_reduce_only_rejected_when_it_would_grow(sim: SimHandle, client) -> None:
    with pytest.raises(ccxt.InvalidOrder) as info:
        await client.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    assert "-2022" in str(info.value)
    await client.create_order(BTC, "market", "buy", 0.01)
    with pytest.raises(ccxt.InvalidOrder):
        await client.create_order(BTC, "market", "buy", 0.01, None, {"reduceOnly": True})
    closing = await client.create_order(BTC, "market", "sell", 0.05, None, {"reduceOnly": True})
    assert closing["filled"] == 0.01  # capped at the position size
    positions = await client.fetch_positions()
    assert positions == []


@pytest.mark.asyncio
async def test_duplicate_client_order_id(sim: SimHandle, client) -> None:
    await client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "dup-1"})
    with pytest.raises(ccxt.InvalidOrder) as info:
        await client.create_order(BTC, "limit", "buy", 0.01, 58000, {"clientOrderId": "dup-1"})
    assert "-4116" in str(info.value)
    await client.cancel_order(None, BTC, {"clientOrderId": "dup-1"})
    again = await client.create_order(BTC, "limit", "buy", 0.01, 58000, {"clientOrderId": "dup-1"})
    fetched = await client.fetch_order(None, BTC, {"origClientOrderId": "dup-1"})
    assert fetched["id"] == again["id"]  # the most recent order with that id


@pytest.mark.asyncio
async def test_filters_min_notional_tick_step(sim: SimHandle, client) -> None:
    with pytest.raises(ccxt.InvalidOrder) as info:
        await client.create_order(BTC, "limit", "buy", 0.001, 59000)
    assert "-4164" in str(info.value)
    raw = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01",
        "price": "59000.1",
    }
    cases = [
        ({"price": "59000.05"}, "-4014"),  # within precision, off the 0.10 tick
        ({"price": "59000.123"}, "-1111"),  # more decimals than pricePrecision
        ({"quantity": "0.0105"}, "-1111"),  # more decimals than quantityPrecision
        ({"quantity": "0"}, "-4003"),
        ({"timeInForce": "GTX1"}, "-1115"),
        ({"timeInForce": "GTD"}, "-1102"),  # GTD without its goodTillDate
    ]
    for change, code in cases:
        with pytest.raises(ccxt.ExchangeError) as info:
            await client.fapiPrivatePostOrder({**raw, **change})
        assert code in str(info.value), (change, str(info.value))
    with pytest.raises(ccxt.BadSymbol):
        await client.fapiPrivatePostOrder({**raw, "symbol": "DOGEUSDT"})
    with pytest.raises(ccxt.BadRequest):
        await client.fapiPrivatePostOrder({k: v for k, v in raw.items() if k != "side"})
    assert await client.fetch_open_orders() == []


@pytest.mark.asyncio
async def test_ioc_and_fok(sim: SimHandle, client) -> None:
    ioc = await client.create_order(BTC, "limit", "buy", 3, 60000.2, {"timeInForce": "IOC"})
    assert ioc["status"] == "expired"
    assert 0 < ioc["filled"] < 3
    with pytest.raises(ccxt.OrderNotFillable):
        await client.create_order(BTC, "limit", "sell", 3, 59999.8, {"timeInForce": "FOK"})
    fok = await client.create_order(BTC, "limit", "sell", 0.01, 59999.0, {"timeInForce": "FOK"})
    assert fok["status"] == "closed"


@pytest.mark.asyncio
async def test_partial_fills_from_synthetic_takers(sim_factory) -> None:
    market = MarketConfig(volatility=0.0, jump_rate=0.0, taker_rate=4.0, history_minutes=10)
    handle = sim_factory(quiet_config(market=market))
    key, secret = handle.create_account()
    ex = make_async(handle, key, secret)
    try:
        await ex.load_markets()
        order = await ex.create_order(BTC, "limit", "buy", 3, 59999.9, {"postOnly": True})
        partial_seen = False
        for _ in range(40):
            handle.advance(500)
            current = await ex.fetch_order(order["id"], BTC)
            if current["status"] == "open" and 0 < current["filled"] < 3:
                partial_seen = True
                assert current["info"]["status"] == "PARTIALLY_FILLED"
            if current["status"] == "closed":
                break
        assert partial_seen
        trades = await ex.fetch_my_trades(BTC)
        assert len(trades) >= 2
        assert all(t["takerOrMaker"] == "maker" for t in trades)
        assert trades[0]["fee"]["cost"] == pytest.approx(trades[0]["cost"] * 0.0002, rel=1e-6)
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_resting_order_filled_when_market_moves_through(sim: SimHandle, client) -> None:
    order = await client.create_order(BTC, "limit", "sell", 0.01, 60300, {"postOnly": True})
    sim.jump("BTCUSDT", 1.0)
    filled = await client.fetch_order(order["id"], BTC)
    assert filled["status"] == "closed"
    assert filled["average"] == 60300
    assert filled["trades"] == [] or filled["filled"] == 0.01


@pytest.mark.asyncio
async def test_users_trade_with_each_other(sim: SimHandle, client) -> None:
    key, secret = sim.create_account()
    other = make_async(sim, key, secret)
    try:
        await other.load_markets()
        ask = await other.create_order(BTC, "limit", "sell", 0.02, 59999.9 + 0.1)
        assert ask["status"] == "open"
        # a resting user ask at the crowd's best ask queues behind the crowd's displayed
        # size there (issue 18: FIFO, no jumping ahead of the book)
        record = next(o for o in sim.state()["open_orders"] if str(o["orderId"]) == ask["id"])
        ahead = float(record["queueAhead"])
        assert ahead > 0
        taken = await client.create_order(BTC, "market", "buy", 0.02)
        assert taken["average"] == 60000.0
        assert (await other.fetch_order(ask["id"], BTC))["status"] == "open"
        record = next(o for o in sim.state()["open_orders"] if str(o["orderId"]) == ask["id"])
        assert float(record["queueAhead"]) == pytest.approx(ahead - 0.02)
        await client.create_order(BTC, "market", "buy", round(ahead - 0.02 + 0.02, 3))
        assert (await other.fetch_order(ask["id"], BTC))["status"] == "closed"
        maker_trades = await other.fetch_my_trades(BTC)
        assert maker_trades[0]["takerOrMaker"] == "maker"
    finally:
        await other.close()


@pytest.mark.asyncio
async def test_batch_orders_create_edit_cancel(sim: SimHandle, client) -> None:
    created = await client.create_orders(
        [
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 59000},
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.01, "price": 58000},
            {"symbol": BTC, "type": "limit", "side": "buy", "amount": 0.001, "price": 58000},
        ]
    )
    # ccxt sorts parsed orders by timestamp, so the error entry (no timestamp) moves first
    errors = [o for o in created if o["id"] is None]
    created = sorted(
        (o for o in created if o["id"] is not None), key=lambda o: o["price"], reverse=True
    )
    assert [o["status"] for o in created] == ["open", "open"]
    assert [e["info"]["code"] for e in errors] == [-4164]  # per-order min-notional error
    edited = await client.edit_orders(
        [
            {
                "id": created[0]["id"],
                "symbol": BTC,
                "type": "limit",
                "side": "buy",
                "amount": 0.02,
                "price": 59100,
            },
        ]
    )
    assert edited[0]["price"] == 59100
    assert edited[0]["amount"] == 0.02
    single = await client.edit_order(created[1]["id"], BTC, "limit", "buy", 0.03, 58100)
    assert single["amount"] == 0.03
    canceled = await client.cancel_orders([created[0]["id"], created[1]["id"]], BTC)
    assert [o["status"] for o in canceled] == ["canceled", "canceled"]
    assert await client.fetch_open_orders(BTC) == []


@pytest.mark.asyncio
async def test_cancel_all_orders(sim: SimHandle, client) -> None:
    for price in (59000, 58000):
        await client.create_order(BTC, "limit", "buy", 0.01, price)
    await client.create_order(ETH, "limit", "buy", 0.1, 2900)
    await client.cancel_all_orders(BTC)
    remaining = await client.fetch_open_orders()
    assert [o["symbol"] for o in remaining] == [ETH]


def test_sync_client_round_trip(sim: SimHandle) -> None:
    key, secret = sim.create_account()
    ex = make_sync(sim, key, secret)
    ex.load_markets()
    order = ex.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "sync-1"})
    assert ex.fetch_order(order["id"], BTC)["clientOrderId"] == "sync-1"
    assert ex.cancel_order(order["id"], BTC)["status"] == "canceled"
    assert ex.fetch_balance()["USDT"]["free"] == pytest.approx(10000.0)
    with pytest.raises(ccxt.OrderNotFillable):
        ex.create_order(BTC, "limit", "sell", 0.01, 59999.9, {"postOnly": True})
