"""Hedge mode conformance: position mode switching, LONG/SHORT orders and positions.

Sources (Binance USD-M futures API docs):
- Change Position Mode (TRADE), POST /fapi/v1/positionSide/dual, dualSidePosition
  "true": Hedge Mode, "false": One-way Mode, on every symbol; weight 1:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Change-Position-Mode
- Get Current Position Mode (USER_DATA), GET /fapi/v1/positionSide/dual ->
  {"dualSidePosition": bool}:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/account/rest-api/Get-Current-Position-Mode
- New Order (TRADE): positionSide "Default BOTH for One-way Mode; LONG or SHORT for Hedge
  Mode. It must be sent in Hedge Mode."; reduceOnly "cannot be sent in Hedge Mode":
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order
- Error codes: -4059 NO_NEED_TO_CHANGE_POSITION_SIDE, -4061 INVALID_POSITION_SIDE
  (Order's position side does not match user's setting), -4067
  POSITION_SIDE_CHANGE_EXISTS_OPEN_ORDERS, -4068 POSITION_SIDE_CHANGE_EXISTS_QUANTITY,
  -2022 REDUCE_ONLY_REJECT:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
The simulator's own state (GET /__sim/state) is the truth the client's view is checked on.
"""

from __future__ import annotations

import ccxt
import pytest

from perpbot.weights import request_cost

from .conftest import BTC, make_sync, quiet_config, quiet_market


def _code(exc: pytest.ExceptionInfo) -> str:
    return str(exc.value)


@pytest.fixture
def hedge(sim_factory):
    sim = sim_factory(quiet_config(market=quiet_market(taker_rate=0.0)))
    key, secret = sim.create_account(balance=100_000)
    ex = make_sync(sim, key, secret)
    ex.load_markets()
    return sim, ex


def _state_positions(sim, key: str) -> dict[str, str]:
    acct = next(a for a in sim.state()["accounts"] if a["api_key"] == key)
    return {p["positionSide"]: p["positionAmt"] for p in acct["positions"]}


def test_switching_position_mode(hedge) -> None:
    sim, ex = hedge
    assert ex.fapiPrivateGetPositionSideDual() == {"dualSidePosition": False}
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "false"})
    assert "-4059" in _code(info)
    assert ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"}) == {
        "code": 200,
        "msg": "success",
    }
    assert ex.fapiPrivateGetPositionSideDual() == {"dualSidePosition": True}
    assert ex.fapiPrivateGetAccountConfig()["dualSidePosition"] is True
    assert request_cost("POST", "/fapi/v1/positionSide/dual", {})[0] == 1
    # with an open order, then with a position, the mode cannot change
    order = ex.create_order(BTC, "limit", "buy", 0.01, 59000, {"positionSide": "LONG"})
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "false"})
    assert "-4067" in _code(info)
    ex.cancel_order(order["id"], BTC)
    ex.create_order(BTC, "market", "buy", 0.01, None, {"positionSide": "LONG"})
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "false"})
    assert "-4068" in _code(info)
    assert ex.fapiPrivateGetPositionSideDual() == {"dualSidePosition": True}
    assert _state_positions(sim, ex.apiKey) == {"LONG": "0.010"}


def test_long_and_short_positions_side_by_side(hedge) -> None:
    sim, ex = hedge
    key = ex.apiKey
    ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    # one-way orders are refused in hedge mode, and reduceOnly may not be sent
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.create_order(BTC, "market", "buy", 0.01)
    assert "-4061" in _code(info)
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.create_order(
            BTC, "market", "sell", 0.01, None, {"positionSide": "LONG", "reduceOnly": True}
        )
    assert "-1106" in _code(info)
    # closing a side that is flat is a reduce-only rejection
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.create_order(BTC, "market", "sell", 0.01, None, {"positionSide": "LONG"})
    assert "-2022" in _code(info)
    long = ex.create_order(BTC, "market", "buy", 0.03, None, {"positionSide": "LONG"})
    short = ex.create_order(BTC, "market", "sell", 0.02, None, {"positionSide": "SHORT"})
    assert long["info"]["positionSide"] == "LONG" and short["info"]["positionSide"] == "SHORT"
    assert _state_positions(sim, key) == {"LONG": "0.030", "SHORT": "-0.020"}
    rows = ex.fapiPrivateV2GetPositionRisk({"symbol": "BTCUSDT"})
    by_side = {r["positionSide"]: r["positionAmt"] for r in rows}
    assert by_side == {"LONG": "0.030", "SHORT": "-0.020"}
    fills = ex.fetch_my_trades(BTC)
    assert {f["info"]["positionSide"] for f in fills} == {"LONG", "SHORT"}
    # closing more than the LONG side holds stops at flat: the side never flips
    ex.create_order(BTC, "market", "sell", 0.05, None, {"positionSide": "LONG"})
    assert _state_positions(sim, key) == {"SHORT": "-0.020"}
    ex.create_order(BTC, "market", "buy", 0.02, None, {"positionSide": "SHORT"})
    assert _state_positions(sim, key) == {}
    # flat again: back to one-way mode, where positionSide LONG is refused
    ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "false"})
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.create_order(BTC, "market", "buy", 0.01, None, {"positionSide": "LONG"})
    assert "-4061" in _code(info)
    ex.create_order(BTC, "market", "buy", 0.01)
    assert _state_positions(sim, key) == {"BOTH": "0.010"}
