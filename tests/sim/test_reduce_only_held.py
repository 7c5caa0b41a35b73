"""-4118: open reduce-only orders are counted against the position (Binance USD-M).

Binance's error code list: -4118 REDUCE_ONLY_MARGIN "ReduceOnly Order Failed. Please check
your existing position and open orders." (ccxt maps it to OperationRejected). Measured live
in xLydianSoftware/Qubx#386: with a 0.001 long and a reduce-only take-profit SELL 0.001
resting, every other reduce-only close was refused, while the full-size reduce-only stop
(an algo order, outside the book) had been accepted beside it. The simulator's state is the
truth: a refused order is not in its order list, the resting one is untouched.
"""

from __future__ import annotations

import ccxt
import pytest

from perpbot.sim import SimHandle

from .conftest import BTC

RO = {"reduceOnly": True}


def _position(sim: SimHandle) -> float:
    acct = sim.state()["accounts"][0]
    return sum(float(p["positionAmt"]) for p in acct["positions"] if p["symbol"] == "BTCUSDT")


@pytest.mark.asyncio
async def test_a_resting_reduce_only_order_leaves_room_only_for_the_rest(
    sim: SimHandle, client
) -> None:
    await client.create_order(BTC, "market", "buy", 0.01)
    tp = await client.create_order(BTC, "limit", "sell", 0.006, 61000.0, RO)
    before = len(sim.state()["orders"])
    for kind, price in (("market", None), ("limit", 60500.0)):
        with pytest.raises(ccxt.OperationRejected) as info:  # 0.006 + 0.005 > 0.01
            await client.create_order(BTC, kind, "sell", 0.005, price, RO)
        assert "-4118" in str(info.value) and "existing position and open orders" in str(info.value)
    assert len(sim.state()["orders"]) == before  # refused: not recorded
    # what is left fits: 0.006 + 0.004 = 0.01
    closing = await client.create_order(BTC, "market", "sell", 0.004, None, RO)
    assert closing["filled"] == pytest.approx(0.004)
    assert _position(sim) == pytest.approx(0.006)
    # the resting take-profit stands, untouched; cancelled, the full close goes through
    assert [o["id"] for o in await client.fetch_open_orders(BTC)] == [tp["id"]]
    await client.cancel_order(tp["id"], BTC)
    await client.create_order(BTC, "market", "sell", 0.006, None, RO)
    assert _position(sim) == 0.0


@pytest.mark.asyncio
async def test_what_is_not_counted_plain_orders_algo_orders_and_a_lone_order(
    sim: SimHandle, client
) -> None:
    await client.create_order(BTC, "market", "buy", 0.01)
    # a plain (not reduce-only) sell resting, and a full-size algo take-profit and stop:
    # none of them is an open reduce-only order in the book
    await client.create_order(BTC, "limit", "sell", 0.01, 61000.0)
    base = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL"}
    await client.fapiPrivatePostAlgoOrder(
        {**base, "type": "TAKE_PROFIT_MARKET", "triggerPrice": "62000", "closePosition": "true"}
    )
    await client.fapiPrivatePostAlgoOrder(
        {**base, "type": "STOP_MARKET", "triggerPrice": "58000", "quantity": "0.01",
         "reduceOnly": "true"}
    )  # fmt: skip
    # a lone reduce-only order larger than the position is accepted; its fills stop at flat
    closing = await client.create_order(BTC, "market", "sell", 0.05, None, RO)
    assert closing["filled"] == pytest.approx(0.01)
    assert _position(sim) == 0.0


@pytest.mark.asyncio
async def test_a_close_position_take_profit_fires_beside_a_full_size_reduce_only_order(
    sim: SimHandle, client
) -> None:
    """A triggered closePosition order closes what is there: it is never refused -4118."""
    await client.create_order(BTC, "market", "buy", 0.01)
    await client.create_order(BTC, "limit", "sell", 0.01, 63000.0, RO)
    await client.fapiPrivatePostAlgoOrder(
        {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
         "type": "TAKE_PROFIT_MARKET", "triggerPrice": "60500", "closePosition": "true",
         "workingType": "MARK_PRICE", "clientAlgoId": "tp-close"}
    )  # fmt: skip
    sim.jump("BTCUSDT", 1.5)  # mark above 60500
    (algo,) = sim.state()["algo_orders"]
    assert algo["algoStatus"] == "FINISHED", algo
    assert _position(sim) == 0.0
    assert await client.fetch_open_orders(BTC) == []  # the reduce-only limit expired at flat
