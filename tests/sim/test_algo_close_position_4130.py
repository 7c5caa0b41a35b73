"""-4130: one waiting closePosition order per type and closing direction (account, symbol).

Binance USD-M refuses a second closePosition STOP_MARKET / TAKE_PROFIT_MARKET of the same type
and direction while one is open: -4130 "An open stop or take profit order with GTE and
closePosition in the direction is existing." (HTTP 400; the code and message as other bots
report them from live use, docs/peer-cases.md; ccxt's binance maps -4130 to ExchangeError). The
direction is the side, and the positionSide in hedge mode. Orders with a quantity (reduce-only
or not) are not limited so. The simulator's own state is the truth.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

import ccxt

from perpbot.sim import SimHandle

from .conftest import BTC, make_sync, quiet_config, quiet_market
from .test_auth import _raw, _signed

MSG = "An open stop or take profit order with GTE and closePosition in the direction is existing."
BASE = {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "workingType": "MARK_PRICE"}
SELL_SL = {**BASE, "side": "SELL", "type": "STOP_MARKET", "closePosition": "true"}


def _account(sim: SimHandle) -> tuple[ccxt.binanceusdm, str]:
    key, secret = sim.create_account(balance=100_000)
    ex = make_sync(sim, key, secret)
    ex.load_markets()
    return ex, secret


def _refused(ex: ccxt.binanceusdm, params: dict[str, str]) -> str:
    try:
        ex.fapiPrivatePostAlgoOrder(params)
    except ccxt.ExchangeError as exc:
        return str(exc)
    raise AssertionError(f"accepted: {params}")


def _open(sim: SimHandle, key: str) -> list[str]:
    return sorted(
        a["clientAlgoId"]
        for a in sim.state()["algo_orders"]
        if a["account"] == key and a["algoStatus"] == "NEW"
    )


def test_a_second_close_position_stop_of_a_direction_is_refused(sim_factory: Any) -> None:
    sim = sim_factory(quiet_config(market=quiet_market(taker_rate=0.0)))
    ex, secret = _account(sim)
    ex.create_order(BTC, "market", "buy", 0.02)
    ex.fapiPrivatePostAlgoOrder({**SELL_SL, "triggerPrice": "59000", "clientAlgoId": "sl-1"})

    # the wire answer: HTTP 400 with Binance's code and message
    query = urlencode({**SELL_SL, "triggerPrice": "58000", "clientAlgoId": "sl-2",
                       "timestamp": int(time.time() * 1000)})  # fmt: skip
    status, body = _raw(sim, "POST", "/fapi/v1/algoOrder", _signed(secret, query), ex.apiKey)
    assert (status, json.loads(body)) == (400, {"code": -4130, "msg": MSG})
    assert "-4130" in _refused(ex, {**SELL_SL, "triggerPrice": "59500", "clientAlgoId": "sl-3"})
    assert _open(sim, ex.apiKey) == ["sl-1"]  # nothing stored for the refused ones

    # not the same type, not the same direction, not closePosition: taken
    ex.fapiPrivatePostAlgoOrder({**SELL_SL, "type": "TAKE_PROFIT_MARKET", "triggerPrice": "62000",
                                 "clientAlgoId": "tp-1"})  # fmt: skip
    ex.fapiPrivatePostAlgoOrder({**SELL_SL, "side": "BUY", "triggerPrice": "62000",
                                 "clientAlgoId": "sl-buy"})  # fmt: skip
    ex.fapiPrivatePostAlgoOrder({**BASE, "side": "SELL", "type": "STOP_MARKET", "quantity": "0.02",
                                 "reduceOnly": "true", "triggerPrice": "58500",
                                 "clientAlgoId": "bridge"})  # fmt: skip
    refused = _refused(ex, {**SELL_SL, "type": "TAKE_PROFIT_MARKET", "triggerPrice": "63000",
                            "clientAlgoId": "tp-2"})  # fmt: skip
    assert "-4130" in refused and MSG in refused
    # another account on the same symbol has its own
    other, _ = _account(sim)
    other.create_order(BTC, "market", "buy", 0.01)
    other.fapiPrivatePostAlgoOrder({**SELL_SL, "triggerPrice": "59000", "clientAlgoId": "sl-1"})

    # once the first is cancelled, a new one of the kind is taken
    ex.fapiPrivateDeleteAlgoOrder({"symbol": "BTCUSDT", "clientAlgoId": "sl-1"})
    ex.fapiPrivatePostAlgoOrder({**SELL_SL, "triggerPrice": "58000", "clientAlgoId": "sl-4"})
    assert _open(sim, ex.apiKey) == ["bridge", "sl-4", "sl-buy", "tp-1"]
    assert _open(sim, other.apiKey) == ["sl-1"]


def test_hedge_mode_direction_is_side_and_position_side(sim_factory: Any) -> None:
    sim = sim_factory(quiet_config(market=quiet_market(taker_rate=0.0)))
    ex, _ = _account(sim)
    ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    ex.create_order(BTC, "market", "buy", 0.03, None, {"positionSide": "LONG"})
    ex.create_order(BTC, "market", "sell", 0.02, None, {"positionSide": "SHORT"})
    ex.fapiPrivatePostAlgoOrder({**SELL_SL, "positionSide": "LONG", "triggerPrice": "59000",
                                 "clientAlgoId": "sl-long"})  # fmt: skip
    ex.fapiPrivatePostAlgoOrder({**SELL_SL, "side": "BUY", "positionSide": "SHORT",
                                 "triggerPrice": "61000", "clientAlgoId": "sl-short"})  # fmt: skip
    for side, ps, trigger in (("SELL", "LONG", "58000"), ("BUY", "SHORT", "62000")):
        again = {"side": side, "positionSide": ps, "triggerPrice": trigger, "clientAlgoId": ps}
        assert "-4130" in _refused(ex, {**SELL_SL, **again})
    assert _open(sim, ex.apiKey) == ["sl-long", "sl-short"]
