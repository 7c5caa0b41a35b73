"""Liquidation conformance: cancel, IOC at the bankruptcy price, insurance fund, then ADL.

Sources:
- Liquidation protocol (open orders cancelled; liquidation at the bankruptcy price; the
  insurance fund; auto-deleveraging ranked by PnL % x leverage):
  https://www.binance.com/en/support/faq/liquidation-protocols-360033525271
  https://www.binance.com/en/support/faq/what-is-auto-deleveraging-adl-360033525471
- User's Force Orders / Position ADL Quantile Estimation:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Users-Force-Orders
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Position-ADL-Quantile-Estimation
"""

from __future__ import annotations

import math

import pytest

from .conftest import BTC, ETH, make_async, quiet_config


def _pos(sim, key: str) -> float:
    acct = next(a for a in sim.state()["accounts"] if a["api_key"] == key)
    return sum(float(p["positionAmt"]) for p in acct["positions"] if p["symbol"] == "BTCUSDT")


@pytest.mark.asyncio
async def test_liquidation_fills_in_the_book_at_or_better_than_bankruptcy(sim_factory) -> None:
    sim = sim_factory(quiet_config())
    key, secret = sim.create_account(balance=1000)
    ex = make_async(sim, key, secret)
    try:
        await ex.load_markets()
        await ex.create_order(BTC, "market", "buy", 0.3)  # 18k notional, 20x, 1000 wallet
        await ex.create_order(ETH, "limit", "buy", 0.1, 2900)
        fund_before = sim.state()["insurance_fund"]
        sim.jump("BTCUSDT", -5.3)  # below maintenance, above bankruptcy (~56 666.7)
        state = sim.state()
        (liq,) = state["liquidations"]
        bankrupt = 60000 - liq["walletBefore"] / 0.3  # entry - margin / size
        assert liq["bankruptcyPrice"] == pytest.approx(bankrupt)
        assert liq["price"] == f"{math.ceil(bankrupt * 10) / 10:.2f}"  # IOC limit, on tick
        assert liq["filledInBook"] == "0.300" and liq["takenByInsuranceFund"] == "0.000"
        assert state["open_orders"] == []  # cross: every symbol's orders cancelled
        liq_trades = [t for t in state["trades"] if t["orderId"] == liq["orderId"]]
        assert liq_trades and all(float(t["price"]) >= bankrupt for t in liq_trades)
        assert state["insurance_fund"] > fund_before  # the clearance fee went to the fund
        forced = await ex.fapiPrivateGetForceOrders({"symbol": "BTCUSDT"})
        assert [o["orderId"] for o in forced] == [liq["orderId"]]
        assert forced[0]["clientOrderId"].startswith("autoclose-")
        assert forced[0]["timeInForce"] == "IOC" and forced[0]["origType"] == "LIQUIDATION"
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_gap_below_bankruptcy_goes_to_the_fund_then_to_adl(sim_factory) -> None:
    sim = sim_factory(quiet_config(insurance_fund=0.0))
    loser, l_secret = sim.create_account(balance=1000)
    winner, w_secret = sim.create_account(balance=100_000)
    lx, wx = make_async(sim, loser, l_secret), make_async(sim, winner, w_secret)
    try:
        await wx.create_order(BTC, "market", "sell", 0.5)
        await lx.create_order(BTC, "market", "buy", 0.3)
        quantile = await wx.fapiPrivateGetAdlQuantile({"symbol": "BTCUSDT"})
        assert quantile[0]["adlQuantile"]["BOTH"] in (1, 2, 3, 4)
        sim.jump("BTCUSDT", -8.0)  # the book is far below the loser's bankruptcy price
        state = sim.state()
        (liq,) = state["liquidations"]
        assert liq["filledInBook"] == "0.000" and liq["autoDeleveraged"] == "0.300"
        assert _pos(sim, loser) == 0.0 and _pos(sim, winner) == pytest.approx(-0.2)
        adl = [o for o in state["orders"] if o["origType"] == "ADL"]
        assert len(adl) == 1 and adl[0]["account"] == winner and adl[0]["price"] == liq["price"]
        assert adl[0]["clientOrderId"].startswith("adl_autoclose-")
        loser_wallet = next(a for a in state["accounts"] if a["api_key"] == loser)
        assert float(loser_wallet["balances"]["USDT"]["wallet"]) == 0.0
    finally:
        await lx.close()
        await wx.close()
