"""Algo orders on a hedge-mode account, and priceMatch on algo STOP / TAKE_PROFIT (issue 18),
driven by unmodified ccxt over HTTP; the simulator's own state is the truth.

Sources:
- New Algo Order (TRADE), POST /fapi/v1/algoOrder:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Algo-Order
  - positionSide: "Default BOTH for One-way Mode; LONG or SHORT for Hedge Mode. It must be
    sent in Hedge Mode."
  - reduceOnly: "cannot be sent in Hedge Mode; cannot be sent with closePosition=true"
  - closePosition: "Close-All, used with STOP_MARKET or TAKE_PROFIT_MARKET"
  - priceMatch: "only available for LIMIT/STOP/TAKE_PROFIT order; can be set to OPPONENT/
    OPPONENT_5/OPPONENT_10/OPPONENT_20: /QUEUE/QUEUE_5/QUEUE_10/QUEUE_20; Can't be passed
    together with price"
- Error codes (-4061 INVALID_POSITION_SIDE, -1106 parameter sent when not required, -5037
  invalid price match, -5038 price match only supports LIMIT, STOP and TAKE_PROFIT):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
"""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from .conftest import BTC, make_sync, quiet_config, quiet_market

BASE = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT"}


@pytest.fixture
def account(sim_factory):
    sim = sim_factory(quiet_config(market=quiet_market(taker_rate=0.0)))
    key, secret = sim.create_account(balance=100_000)
    ex = make_sync(sim, key, secret)
    ex.load_markets()
    return sim, ex


def _sides(sim, key: str) -> dict[str, str]:
    acct = next(a for a in sim.state()["accounts"] if a["api_key"] == key)
    return {p["positionSide"]: p["positionAmt"] for p in acct["positions"]}


def _algos(sim) -> dict[str, dict[str, Any]]:
    return {a["clientAlgoId"]: a for a in sim.state()["algo_orders"]}


def _child(sim, algo: dict[str, Any]) -> dict[str, Any]:
    return next(o for o in sim.state()["orders"] if str(o["orderId"]) == algo["actualOrderId"])


def _refused(ex, params: dict[str, str]) -> str:
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.fapiPrivatePostAlgoOrder({**BASE, **params})
    return str(info.value)


def test_hedge_refusals_match_new_order(account) -> None:
    sim, ex = account
    stop = {"side": "SELL", "type": "STOP_MARKET", "triggerPrice": "59000", "quantity": "0.01"}
    assert "-4061" in _refused(ex, {**stop, "positionSide": "LONG"})  # one-way account
    ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    assert "-4061" in _refused(ex, stop)  # hedge mode: positionSide must be sent
    assert "-4061" in _refused(ex, {**stop, "positionSide": "BOTH"})
    assert "-4061" in _refused(ex, {**stop, "positionSide": "NONE"})
    assert "-1106" in _refused(ex, {**stop, "positionSide": "LONG", "reduceOnly": "true"})
    assert "-1106" in _refused(ex, {**stop, "positionSide": "LONG", "reduceOnly": "false"})
    assert sim.state()["algo_orders"] == []


def test_close_position_per_side_closes_that_side_only(account) -> None:
    sim, ex = account
    key = ex.apiKey
    ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    ex.create_order(BTC, "market", "buy", 0.03, None, {"positionSide": "LONG"})
    ex.create_order(BTC, "market", "sell", 0.02, None, {"positionSide": "SHORT"})
    close = {"type": "STOP_MARKET", "closePosition": "true", "workingType": "MARK_PRICE"}
    long_sl = ex.fapiPrivatePostAlgoOrder(
        {**BASE, **close, "side": "SELL", "positionSide": "LONG", "triggerPrice": "59000",
         "clientAlgoId": "sl-long"}
    )  # fmt: skip
    short_sl = ex.fapiPrivatePostAlgoOrder(
        {**BASE, **close, "side": "BUY", "positionSide": "SHORT", "triggerPrice": "61000",
         "clientAlgoId": "sl-short"}
    )  # fmt: skip
    assert (long_sl["positionSide"], short_sl["positionSide"]) == ("LONG", "SHORT")
    opened = ex.fetch_open_orders(BTC, None, None, {"trigger": True})
    assert {o["info"]["positionSide"] for o in opened} == {"LONG", "SHORT"}
    sim.jump("BTCUSDT", -2.0)  # mark 58800: through the LONG side's stop only
    algos = _algos(sim)
    assert algos["sl-long"]["algoStatus"] == "FINISHED" and algos["sl-short"]["algoStatus"] == "NEW"
    child = _child(sim, algos["sl-long"])
    assert (child["side"], child["positionSide"], child["reduceOnly"]) == ("SELL", "LONG", False)
    assert child["status"] == "FILLED" and child["origType"] == "STOP_MARKET"
    assert _sides(sim, key) == {"SHORT": "-0.020"}  # the whole LONG side, nothing else
    sim.jump("BTCUSDT", 4.0)  # mark ~61152: through the SHORT side's stop
    algos = _algos(sim)
    assert algos["sl-short"]["algoStatus"] == "FINISHED"
    assert _child(sim, algos["sl-short"])["positionSide"] == "SHORT"
    assert _sides(sim, key) == {}


def test_quantity_stop_with_position_side_through_ccxt(account) -> None:
    """ccxt's create_order(..., {'triggerPrice', 'positionSide'}) reaches the algo API; the
    child is a SELL LONG close of that quantity; an opening-side closePosition expires."""
    sim, ex = account
    key = ex.apiKey
    ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    ex.create_order(BTC, "market", "buy", 0.03, None, {"positionSide": "LONG"})
    ex.create_order(BTC, "market", "sell", 0.02, None, {"positionSide": "SHORT"})
    stop = ex.create_order(
        BTC, "market", "sell", 0.001, None, {"triggerPrice": 59000, "positionSide": "LONG"}
    )  # a close below minimum notional is allowed, as a reduce-only one is in one-way mode
    assert ex.last_request_url.endswith("/fapi/v1/algoOrder")
    ex.fapiPrivatePostAlgoOrder(
        {**BASE, "side": "BUY", "positionSide": "LONG", "type": "TAKE_PROFIT_MARKET",
         "triggerPrice": "59500", "closePosition": "true", "clientAlgoId": "wrong-way"}
    )  # fmt: skip
    sim.jump("BTCUSDT", -2.0)
    record = next(a for a in sim.state()["algo_orders"] if str(a["algoId"]) == stop["id"])
    assert record["algoStatus"] == "FINISHED" and record["positionSide"] == "LONG"
    assert _child(sim, record)["positionSide"] == "LONG"
    assert _algos(sim)["wrong-way"]["algoStatus"] == "EXPIRED"  # BUY LONG closes nothing
    assert _sides(sim, key) == {"LONG": "0.029", "SHORT": "-0.020"}


def test_price_match_refusals(account) -> None:
    _, ex = account
    ex.create_order(BTC, "market", "buy", 0.02)
    stop = {"side": "SELL", "type": "STOP", "triggerPrice": "59000", "quantity": "0.01"}
    assert "-1106" in _refused(ex, {**stop, "price": "58990", "priceMatch": "OPPONENT"})
    assert "-5037" in _refused(ex, {**stop, "priceMatch": "BEST"})
    assert "-5038" in _refused(
        ex, {**stop, "type": "STOP_MARKET", "priceMatch": "QUEUE"}
    )  # only STOP / TAKE_PROFIT
    assert "-1102" in _refused(ex, stop)  # neither price nor priceMatch


@pytest.mark.parametrize("hedged", [False, True])
def test_price_match_child_takes_the_price_at_trigger(account, hedged: bool) -> None:
    """The child LIMIT's price is matched when the trigger fires, not when the algo order is
    placed: QUEUE (own side's best) rests at the book's best ask after the move."""
    sim, ex = account
    if hedged:
        ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    side = {"positionSide": "LONG"} if hedged else {"reduceOnly": "true"}
    ex.create_order(BTC, "market", "buy", 0.02, None, {"positionSide": "LONG"} if hedged else {})
    placed_ask = ex.fetch_order_book(BTC)["asks"][0][0]
    ex.fapiPrivatePostAlgoOrder(
        {**BASE, **side, "side": "SELL", "type": "STOP", "triggerPrice": "59000",
         "quantity": "0.01", "priceMatch": "QUEUE", "clientAlgoId": "pm"}
    )  # fmt: skip
    record = _algos(sim)["pm"]
    assert record["priceMatch"] == "QUEUE" and record["price"] == "0.00"
    sim.jump("BTCUSDT", -2.0)
    record = _algos(sim)["pm"]
    assert record["algoStatus"] == "TRIGGERED"  # resting at its own side's best
    child = _child(sim, record)
    best_ask = ex.fetch_order_book(BTC)["asks"][0][0]
    assert child["type"] == "LIMIT" and child["origType"] == "STOP"
    assert float(child["price"]) == best_ask != placed_ask
    assert child["positionSide"] == ("LONG" if hedged else "BOTH")
    assert child["reduceOnly"] is (not hedged)
