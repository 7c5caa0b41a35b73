"""Algo Order API conformance (issue 17's simulator part), driven by unmodified ccxt.

Sources:
- New Algo Order: https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Algo-Order
- Query Algo Order: https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Query-Algo-Order
- Current All Algo Open Orders / Cancel Algo Order / Cancel All Algo Open Orders: the same
  section, .../trade/rest-api/Current-All-Algo-Open-Orders, .../Cancel-Algo-Order,
  .../Cancel-All-Algo-Open-Orders
- Algo statuses (NEW, CANCELED, TRIGGERING, TRIGGERED, FINISHED, REJECTED, EXPIRED):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/user-data-streams/Event-Algo-Order-Update
- Error codes (-2021 "Order would immediately trigger.", -4120, -4136):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
"""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from perpbot.sim import SimHandle

from .conftest import BTC

QUERY_KEYS = [
    "algoId",
    "clientAlgoId",
    "algoType",
    "orderType",
    "symbol",
    "side",
    "positionSide",
    "timeInForce",
    "quantity",
    "algoStatus",
    "actualOrderId",
    "actualPrice",
    "triggerPrice",
    "price",
    "icebergQuantity",
    "selfTradePreventionMode",
    "workingType",
    "priceMatch",
    "closePosition",
    "priceProtect",
    "reduceOnly",
    "activatePrice",
    "callbackRate",
    "createTime",
    "updateTime",
    "triggerTime",
    "goodTillDate",
]


def _algos(sim: SimHandle) -> list[dict[str, Any]]:
    return list(sim.state()["algo_orders"])


def _position(sim: SimHandle) -> float:
    acct = sim.state()["accounts"][0]
    return sum(float(p["positionAmt"]) for p in acct["positions"] if p["symbol"] == "BTCUSDT")


@pytest.mark.asyncio
async def test_ccxt_stop_loss_with_trigger_price_end_to_end(sim: SimHandle, client) -> None:
    """ccxt's create_order(..., {'triggerPrice'}) goes to POST /fapi/v1/algoOrder and fires."""
    await client.create_order(BTC, "market", "buy", 0.02)
    stop = await client.create_order(
        BTC, "market", "sell", 0.02, None, {"triggerPrice": 59000, "reduceOnly": True}
    )
    assert stop["status"] == "open" and stop["triggerPrice"] == 59000.0
    (record,) = _algos(sim)
    assert str(record["algoId"]) == stop["id"] and record["algoStatus"] == "NEW"
    assert record["orderType"] == "STOP_MARKET" and record["workingType"] == "CONTRACT_PRICE"
    assert await client.fetch_open_orders(BTC) == []  # not in the book
    opened = await client.fetch_open_orders(BTC, None, None, {"trigger": True})
    assert [o["id"] for o in opened] == [stop["id"]]
    fetched = await client.fetch_order(stop["id"], BTC, {"trigger": True})
    assert list(fetched["info"]) == QUERY_KEYS
    sim.jump("BTCUSDT", -1.0)  # above the stop: nothing happens
    assert _algos(sim)[0]["algoStatus"] == "NEW" and _position(sim) == pytest.approx(0.02)
    sim.jump("BTCUSDT", -1.0)  # 58806: crosses 59000
    (record,) = _algos(sim)
    assert record["algoStatus"] == "FINISHED" and record["actualOrderId"]
    assert record["triggerTime"] > 0
    assert _position(sim) == 0.0
    child = next(o for o in sim.state()["orders"] if str(o["orderId"]) == record["actualOrderId"])
    assert child["status"] == "FILLED" and child["origType"] == "STOP_MARKET"
    assert child["type"] == "MARKET" and child["reduceOnly"] is True


@pytest.mark.asyncio
async def test_close_position_on_mark_price_and_cancel(sim: SimHandle, client) -> None:
    await client.create_order(BTC, "market", "sell", 0.03)
    base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "BUY"}
    tp = await client.fapiPrivatePostAlgoOrder(
        {
            **base,
            "type": "TAKE_PROFIT_MARKET",
            "triggerPrice": "58000",
            "closePosition": "true",
            "workingType": "MARK_PRICE",
            "clientAlgoId": "tp-1",
        }
    )
    sl = await client.fapiPrivatePostAlgoOrder(
        {
            **base,
            "type": "STOP_MARKET",
            "triggerPrice": "61000",
            "closePosition": "true",
            "workingType": "MARK_PRICE",
            "clientAlgoId": "sl-1",
        }
    )
    assert tp["algoStatus"] == "NEW" and tp["closePosition"] is True and tp["quantity"] == "0.000"
    cancelled = await client.fapiPrivateDeleteAlgoOrder({"clientAlgoId": "sl-1"})
    assert cancelled == {
        "algoId": sl["algoId"],
        "clientAlgoId": "sl-1",
        "code": "200",
        "msg": "success",
    }
    with pytest.raises(ccxt.OrderNotFound):  # -2011 on a second cancel
        await client.fapiPrivateDeleteAlgoOrder({"algoId": sl["algoId"]})
    sim.jump("BTCUSDT", -3.5)  # mark below 58000
    states = {a["clientAlgoId"]: a["algoStatus"] for a in _algos(sim)}
    assert states == {"tp-1": "FINISHED", "sl-1": "CANCELED"}
    assert _position(sim) == 0.0


@pytest.mark.asyncio
async def test_validation_codes(sim: SimHandle, client) -> None:
    base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "quantity": "0.01"}
    cases = [
        ({"type": "STOP_MARKET", "triggerPrice": "61000"}, "-2021"),  # sell stop above price
        ({"type": "TAKE_PROFIT_MARKET", "triggerPrice": "59000"}, "-2021"),
        ({"type": "STOP", "triggerPrice": "59000"}, "-1102"),  # price missing
        (
            {"type": "STOP", "triggerPrice": "59000", "price": "59000", "closePosition": "true"},
            "-4136",
        ),
        ({"type": "LIMIT", "triggerPrice": "59000"}, "-1116"),
        ({"type": "TRAILING_STOP_MARKET", "callbackRate": "20"}, "-1130"),
        ({"type": "STOP_MARKET", "triggerPrice": "59000", "algoType": "VP"}, "-1130"),
    ]
    for change, code in cases:
        with pytest.raises(ccxt.ExchangeError) as exc:
            await client.fapiPrivatePostAlgoOrder({**base, **change})
        assert code in str(exc.value), (change, str(exc.value))
    with pytest.raises(ccxt.ExchangeError) as exc:  # the regular endpoint refuses them
        await client.fapiPrivatePostOrder({**base, "type": "STOP_MARKET", "stopPrice": "59000"})
    assert "-4120" in str(exc.value)
    assert _algos(sim) == []


@pytest.mark.asyncio
async def test_stop_limit_and_trailing_stop(sim: SimHandle, client) -> None:
    await client.create_order(BTC, "market", "buy", 0.05)
    base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL", "reduceOnly": "true"}
    await client.fapiPrivatePostAlgoOrder(
        {
            **base,
            "type": "TRAILING_STOP_MARKET",
            "quantity": "0.02",
            "callbackRate": "1",
            "activatePrice": "60500",
            "clientAlgoId": "trail",
        }
    )
    await client.fapiPrivatePostAlgoOrder(
        {
            **base,
            "type": "STOP",
            "quantity": "0.03",
            "triggerPrice": "57000",
            "price": "56990",
            "timeInForce": "GTC",
            "clientAlgoId": "stoplimit",
        }
    )
    sim.jump("BTCUSDT", 2.0)  # 61200: activates the trailing stop (extreme 61200)
    sim.jump("BTCUSDT", -0.5)  # 60894: 0.5 % off the top, not 1 %
    assert {a["clientAlgoId"]: a["algoStatus"] for a in _algos(sim)}["trail"] == "NEW"
    sim.jump("BTCUSDT", -0.6)  # 60528.6: 1.1 % off 61200 -> fires
    states = {a["clientAlgoId"]: a for a in _algos(sim)}
    assert states["trail"]["algoStatus"] == "FINISHED"
    assert (
        states["trail"]["activatePrice"] == "60500.00" and states["trail"]["callbackRate"] == "1.0"
    )
    assert _position(sim) == pytest.approx(0.03)
    sim.jump("BTCUSDT", -6.0)  # ~56897: stop-limit triggers, a LIMIT sell at 56990 rests/fills
    stop = {a["clientAlgoId"]: a for a in _algos(sim)}["stoplimit"]
    assert stop["algoStatus"] in ("TRIGGERED", "FINISHED") and stop["actualOrderId"]
    child = next(o for o in sim.state()["orders"] if str(o["orderId"]) == stop["actualOrderId"])
    assert child["type"] == "LIMIT" and child["price"] == "56990.00"
    assert child["origType"] == "STOP"


@pytest.mark.asyncio
async def test_dead_man_and_cancel_all_leave_algo_orders_algo_cancel_all_does_not(
    sim: SimHandle, client
) -> None:
    """Binance does not document whether countdownCancelAll / allOpenOrders reach algo
    orders; the simulator leaves them standing (documented) and algoOpenOrders cancels."""
    await client.create_order(BTC, "market", "buy", 0.02)
    await client.create_order(BTC, "limit", "buy", 0.01, 59000)
    await client.create_order(
        BTC, "market", "sell", 0.02, None, {"triggerPrice": 58000, "reduceOnly": True}
    )
    await client.fapiPrivatePostCountdownCancelAll({"symbol": "BTCUSDT", "countdownTime": 1000})
    sim.advance(2000)
    assert await client.fetch_open_orders(BTC) == []  # the dead-man fired
    assert [a["algoStatus"] for a in _algos(sim)] == ["NEW"]  # the stop still stands
    await client.cancel_all_orders(BTC)
    assert [a["algoStatus"] for a in _algos(sim)] == ["NEW"]
    done = await client.cancel_all_orders(BTC, {"trigger": True})
    assert done is not None
    assert [a["algoStatus"] for a in _algos(sim)] == ["CANCELED"]


@pytest.mark.asyncio
async def test_algo_weights_and_order_counts(sim: SimHandle, client) -> None:
    """New Algo Order: weight 0, 1 on each order counter; open algo orders 1 / 40 without symbol."""
    sim.advance(60_000 - sim.state()["server_time"] % 60_000)
    await client.fetch_time()
    used = int(client.last_response_headers["X-MBX-USED-WEIGHT-1M"])
    await client.fapiPrivatePostAlgoOrder(
        {
            "algoType": "CONDITIONAL",
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "STOP_MARKET",
            "quantity": "0.01",
            "triggerPrice": "61000",
        }
    )
    headers = client.last_response_headers
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) == used
    assert (headers["X-MBX-ORDER-COUNT-10S"], headers["X-MBX-ORDER-COUNT-1M"]) == ("1", "1")
    await client.fapiPrivateGetOpenAlgoOrders()
    assert int(client.last_response_headers["X-MBX-USED-WEIGHT-1M"]) == used + 40
    await client.fapiPrivateGetOpenAlgoOrders({"symbol": "BTCUSDT"})
    assert int(client.last_response_headers["X-MBX-USED-WEIGHT-1M"]) == used + 41


@pytest.mark.asyncio
async def test_every_ccxt_conditional_param_reaches_the_algo_api(sim: SimHandle, client) -> None:
    """ccxt 4.5.90 binanceusdm: stopPrice / stopLossPrice / takeProfitPrice / trailingPercent
    all go to POST /fapi/v1/algoOrder with the matching Binance type."""
    await client.create_order(BTC, "market", "buy", 0.05)
    cases = [
        ("market", None, {"stopPrice": 59000}, "STOP_MARKET"),
        ("market", None, {"stopLossPrice": 58000}, "STOP_MARKET"),
        ("market", None, {"takeProfitPrice": 61000}, "TAKE_PROFIT_MARKET"),
        ("market", None, {"trailingPercent": 1.0}, "TRAILING_STOP_MARKET"),
        ("limit", 58990, {"stopPrice": 59000}, "STOP"),
        ("limit", 61010, {"takeProfitPrice": 61000}, "TAKE_PROFIT"),
    ]
    for kind, price, params, expected in cases:
        order = await client.create_order(
            BTC, kind, "sell", 0.01, price, {**params, "reduceOnly": True}
        )
        assert client.last_request_url.endswith("/fapi/v1/algoOrder")
        record = next(a for a in _algos(sim) if str(a["algoId"]) == order["id"])
        assert record["orderType"] == expected and record["algoStatus"] == "NEW"
    assert len(await client.fetch_open_orders(BTC, None, None, {"trigger": True})) == 6
