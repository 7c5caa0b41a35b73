"""Modify Isolated Position Margin: the simulator's answers vs Binance's documented ones.

Sources (Binance USD-M futures API docs):
- Modify Isolated Position Margin (TRADE), POST /fapi/v1/positionMargin, weight 1;
  symbol, positionSide ("Default BOTH for One-way Mode; LONG or SHORT for Hedge Mode. It
  must be sent with Hedge Mode."), amount, type ("1: Add position margin, 2: Reduce
  position margin"); "Only for isolated symbol"; response
  {"amount": 100.0, "code": 200, "msg": "Successfully modify position margin.", "type": 1}:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Modify-Isolated-Position-Margin
- Get Position Margin Change History (TRADE), GET /fapi/v1/positionMargin/history:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Get-Position-Margin-Change-History
- Error codes: -4049 ADD_ISOLATED_MARGIN_REJECT ("Add margin only support for isolated
  position."), -4050 CROSS_BALANCE_INSUFFICIENT, -4051 ISOLATED_BALANCE_INSUFFICIENT,
  -4054 ADD_ISOLATED_MARGIN_NO_POSITION_REJECT ("Cannot add position margin: position is
  0."), -4055 AMOUNT_MUST_BE_POSITIVE, -4061 POSITION_SIDE_NOT_MATCH:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
The simulator's state (GET /__sim/state) is the truth: the isolated wallet moves by
exactly the amount, the wallet balance does not (margin moves inside the account), and
the liquidation price follows.
"""

from __future__ import annotations

import ccxt
import pytest

from perpbot.weights import request_cost

from .conftest import BTC, make_sync, quiet_config, quiet_market


@pytest.fixture
def venue(sim_factory):
    sim = sim_factory(quiet_config(market=quiet_market(taker_rate=0.0)))
    key, secret = sim.create_account(balance=10_000)
    ex = make_sync(sim, key, secret)
    ex.load_markets()
    return sim, key, ex


def _truth(sim, key: str) -> tuple[float, dict]:
    acct = next(a for a in sim.state()["accounts"] if a["api_key"] == key)
    pos = next(p for p in acct["positions"] if p["symbol"] == "BTCUSDT")
    return float(acct["balances"]["USDT"]["wallet"]), pos


def _raw(amount: str, kind: str) -> dict[str, str]:
    return {"symbol": "BTCUSDT", "amount": amount, "type": kind}


def test_add_and_reduce_isolated_margin(venue) -> None:
    sim, key, ex = venue
    ex.set_margin_mode("isolated", BTC)
    ex.set_leverage(10, BTC)
    ex.create_order(BTC, "market", "buy", 0.1)  # ~6000 USDT notional, ~600 initial margin
    wallet0, pos0 = _truth(sim, key)
    iso0 = float(pos0["isolatedWallet"])
    liq0 = float(pos0["liquidationPrice"])
    assert iso0 == pytest.approx(600, rel=0.01)

    added = ex.fapiPrivatePostPositionMargin(_raw("250", "1"))
    assert added == {
        "amount": 250.0,
        "code": 200,
        "msg": "Successfully modify position margin.",
        "type": 1,
    }
    wallet1, pos1 = _truth(sim, key)
    assert float(pos1["isolatedWallet"]) == pytest.approx(iso0 + 250)
    assert wallet1 == pytest.approx(wallet0)  # moved inside the account, not paid
    assert float(pos1["liquidationPrice"]) < liq0  # a long with more margin: liquidated lower
    risk = ex.fapiPrivateV2GetPositionRisk({"symbol": "BTCUSDT"})[0]
    assert float(risk["isolatedWallet"]) == pytest.approx(iso0 + 250)

    reduced = ex.reduce_margin(BTC, 100)  # ccxt's unified call sends type 2
    assert reduced["type"] == "reduce" and reduced["amount"] == 100
    _, pos2 = _truth(sim, key)
    assert float(pos2["isolatedWallet"]) == pytest.approx(iso0 + 150)

    # only what was added can be taken back: the initial margin stays
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.fapiPrivatePostPositionMargin(_raw("200", "2"))
    assert "-4051" in str(info.value)
    # adding more than the available cross balance
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.fapiPrivatePostPositionMargin(_raw("9500", "1"))
    assert "-4050" in str(info.value)
    _, pos3 = _truth(sim, key)
    assert float(pos3["isolatedWallet"]) == pytest.approx(iso0 + 150)

    history = ex.fapiPrivateGetPositionMarginHistory({"symbol": "BTCUSDT"})
    adjusts = [(h["type"], float(h["amount"])) for h in history if h["deltaType"] == "USER_ADJUST"]
    assert adjusts == [(1, 250.0), (2, 100.0)]
    assert request_cost("POST", "/fapi/v1/positionMargin", {}) == (1, 0)


def test_position_margin_refusals_carry_binances_codes(venue) -> None:
    sim, key, ex = venue
    # cross margin: "Only for isolated symbol"
    ex.create_order(BTC, "market", "buy", 0.01)
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.fapiPrivatePostPositionMargin(_raw("10", "1"))
    assert "-4049" in str(info.value)
    ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})
    ex.set_margin_mode("isolated", BTC)
    cases = [
        (_raw("10", "1"), "-4054"),  # no position
        (_raw("0", "1"), "-4055"),
        (_raw("-5", "2"), "-4055"),
        (_raw("10", "3"), "-1130"),  # int_param: data not valid
        ({"symbol": "BTCUSDT", "amount": "10"}, "-1102"),
        ({"symbol": "BTCUSDT", "type": "1"}, "-1102"),
        ({**_raw("10", "1"), "positionSide": "LONG"}, "-4061"),  # one-way account
        ({**_raw("10", "1"), "positionSide": "UP"}, "-4060"),
    ]
    for params, code in cases:
        with pytest.raises(ccxt.ExchangeError) as exc:
            ex.fapiPrivatePostPositionMargin(params)
        assert code in str(exc.value), (params, str(exc.value))
    acct = next(a for a in sim.state()["accounts"] if a["api_key"] == key)
    assert all(float(p["isolatedWallet"]) == 0 for p in acct["positions"])


def test_hedge_mode_adjusts_one_side(venue) -> None:
    sim, key, ex = venue
    ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    ex.set_margin_mode("isolated", BTC)
    ex.create_order(BTC, "market", "buy", 0.01, None, {"positionSide": "LONG"})
    ex.create_order(BTC, "market", "sell", 0.01, None, {"positionSide": "SHORT"})
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.fapiPrivatePostPositionMargin(_raw("10", "1"))  # BOTH on a hedge-mode account
    assert "-4061" in str(info.value)
    before = _side_wallets(sim, key)
    ex.fapiPrivatePostPositionMargin({**_raw("10", "1"), "positionSide": "SHORT"})
    after = _side_wallets(sim, key)
    assert after["SHORT"] == pytest.approx(before["SHORT"] + 10)
    assert after["LONG"] == before["LONG"]


def _side_wallets(sim, key: str) -> dict[str, float]:
    acct = next(a for a in sim.state()["accounts"] if a["api_key"] == key)
    return {p["positionSide"]: float(p["isolatedWallet"]) for p in acct["positions"]}
