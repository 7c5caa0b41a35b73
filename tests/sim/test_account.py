"""Account endpoints, funding, liquidation, the dead-man switch and key permissions."""

from __future__ import annotations

import ccxt
import pytest

from perpbot.sim import SimHandle
from perpbot.sim.config import FundingConfig

from .conftest import BTC, ETH, make_async, quiet_config


@pytest.mark.asyncio
async def test_balance_and_positions_v3_and_v2(sim: SimHandle, client) -> None:
    balance = await client.fetch_balance()
    assert balance["USDT"] == {"free": 10000.0, "used": 0.0, "total": 10000.0}
    await client.create_order(BTC, "market", "buy", 1.5)
    await client.create_order(BTC, "limit", "buy", 0.1, 59000)
    after = await client.fetch_balance()
    assert after["USDT"]["used"] == pytest.approx(90000.0 / 20 + 5900.0 / 20, rel=1e-3)
    v2 = await client.fetch_balance({"useV2": True})
    assert v2["USDT"]["total"] == pytest.approx(after["USDT"]["total"])
    positions = await client.fetch_positions()
    assert len(positions) == 1
    pos = positions[0]
    assert pos["symbol"] == BTC and pos["contracts"] == 1.5
    assert 60000.0 < pos["entryPrice"] < 60002.0  # walked a couple of crowd levels
    assert pos["marginMode"] == "cross"
    # margin + amt * (P - entry) = maint at P: about 60000 - 10000 / 1.5
    assert pos["liquidationPrice"] == pytest.approx(60000 - 10000 / 1.5, rel=0.01)
    v2_positions = await client.fetch_positions(None, {"useV2": True})
    assert {p["symbol"] for p in v2_positions} == {BTC}
    assert v2_positions[0]["leverage"] == 20
    raw_v2 = await client.fapiPrivateV2GetPositionRisk()
    assert {r["symbol"] for r in raw_v2} == {"BTCUSDT", "ETHUSDT"}  # v2 lists every symbol


@pytest.mark.asyncio
async def test_leverage_margin_mode_symbol_config(sim: SimHandle, client) -> None:
    result = await client.set_leverage(5, BTC)
    assert result["leverage"] == 5 and result["symbol"] == "BTCUSDT"
    with pytest.raises(ccxt.BadRequest):
        await client.fapiPrivatePostLeverage({"symbol": "BTCUSDT", "leverage": 200})
    assert (await client.fetch_margin_mode(BTC))["marginMode"] == "cross"
    await client.set_margin_mode("isolated", BTC)
    with pytest.raises(ccxt.MarginModeAlreadySet):
        await client.set_margin_mode("isolated", BTC)
    mode = await client.fetch_margin_mode(BTC)
    assert mode["marginMode"] == "isolated"
    config = await client.fapiPrivateGetSymbolConfig({"symbol": "BTCUSDT"})
    assert config[0]["leverage"] == 5 and config[0]["marginType"] == "ISOLATED"
    order = await client.create_order(BTC, "limit", "buy", 0.01, 59000)
    with pytest.raises(ccxt.ExchangeError) as info:
        await client.set_margin_mode("cross", BTC)
    assert "-4047" in str(info.value)
    await client.cancel_order(order["id"], BTC)
    await client.create_order(BTC, "market", "buy", 0.05)
    with pytest.raises(ccxt.ExchangeError) as info:
        await client.set_margin_mode("cross", BTC)
    assert "-4048" in str(info.value)
    positions = await client.fetch_positions()
    assert positions[0]["marginMode"] == "isolated"
    assert positions[0]["collateral"] == pytest.approx(0.05 * 60000 / 5, rel=1e-3)
    history = await client.fetch_margin_adjustment_history(BTC)
    assert history[0]["type"] == "add" and history[0]["amount"] == pytest.approx(600, rel=1e-3)


@pytest.mark.asyncio
async def test_leverage_brackets(sim: SimHandle, client) -> None:
    tiers = await client.fetch_leverage_tiers([BTC])
    assert tiers[BTC][0]["maxLeverage"] == 125
    assert tiers[BTC][0]["maintenanceMarginRate"] == 0.004
    one = await client.fapiPrivateGetLeverageBracket({"symbol": "BTCUSDT"})
    assert one["symbol"] == "BTCUSDT"


@pytest.mark.asyncio
async def test_funding_charged_and_in_history(sim_factory) -> None:
    # an accelerated, fixed-rate schedule (the default is Binance's 8 h from the premium
    # index, see test_conformance_market.py)
    sim = sim_factory(quiet_config(funding=FundingConfig(interval_s=30, rate=0.0001)))
    client = make_async(sim, *sim.create_account())
    try:
        await _funding_case(sim, client)
    finally:
        await client.close()


async def _funding_case(sim: SimHandle, client) -> None:
    await client.create_order(BTC, "market", "buy", 0.1)
    wallet_before = float((await client.fapiPrivateV3GetAccount())["totalWalletBalance"])
    sim.advance(31_000)  # at least one 30 s funding time
    sim.advance(29_000)  # 60 s in all: exactly two, wherever the clock started (61 s
    # crossed a third when the manual clock started in the last second of an interval)
    history = await client.fetch_funding_history(BTC)
    assert len(history) == 2
    assert all(h["amount"] == pytest.approx(-0.1 * 60000 * 0.0001) for h in history)
    wallet_after = float((await client.fapiPrivateV3GetAccount())["totalWalletBalance"])
    assert wallet_after == pytest.approx(wallet_before - 2 * 0.6)
    income = await client.fapiPrivateGetIncome({"symbol": "BTCUSDT"})
    assert {r["incomeType"] for r in income} == {"COMMISSION", "FUNDING_FEE"}
    rate = await client.fetch_funding_rate(BTC)
    assert rate["fundingRate"] == 0.0001
    assert rate["fundingTimestamp"] % 30_000 == 0


@pytest.mark.asyncio
async def test_realized_pnl_income(sim: SimHandle, client) -> None:
    await client.create_order(BTC, "market", "buy", 0.1)
    sim.jump("BTCUSDT", 1.0)
    await client.create_order(BTC, "market", "sell", 0.1, None, {"reduceOnly": True})
    income = await client.fapiPrivateGetIncome({"incomeType": "REALIZED_PNL"})
    assert len(income) == 1 and float(income[0]["income"]) == pytest.approx(60, rel=0.02)
    trades = await client.fetch_my_trades(BTC)
    assert float(trades[-1]["info"]["realizedPnl"]) == pytest.approx(60, rel=0.02)


@pytest.mark.asyncio
async def test_liquidation(sim: SimHandle) -> None:
    key, secret = sim.create_account(balance=1000)
    ex = make_async(sim, key, secret)
    try:
        await ex.load_markets()
        await ex.create_order(BTC, "market", "buy", 0.3)  # 18k notional at 20x on 1k
        await ex.create_order(BTC, "limit", "buy", 0.01, 58000)
        sim.jump("BTCUSDT", -6.0)  # a 1080 USDT loss on a 1000 USDT wallet
        assert await ex.fetch_positions() == []
        assert await ex.fetch_open_orders(BTC) == []  # liquidation cancels open orders
        state = sim.state()
        liq = state["liquidations"]
        assert len(liq) == 1 and liq[0]["account"] == key and liq[0]["symbol"] == "BTCUSDT"
        assert float(state["accounts"][0]["balances"]["USDT"]["wallet"]) == 0.0
        trades = await ex.fetch_my_trades(BTC)
        assert trades[-1]["side"] == "sell"
        records = [o for o in state["orders"] if o["origType"] == "LIQUIDATION"]
        assert records[0]["clientOrderId"].startswith("autoclose-")
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_countdown_cancel_all_lapses(sim: SimHandle, client) -> None:
    await client.create_order(BTC, "limit", "buy", 0.01, 59000)
    await client.create_order(ETH, "limit", "buy", 0.1, 2900)
    armed = await client.fapiPrivatePostCountdownCancelAll(
        {"symbol": "BTCUSDT", "countdownTime": 120000}
    )
    assert armed == {"symbol": "BTCUSDT", "countdownTime": "120000"}
    sim.advance(60_000)
    assert len(await client.fetch_open_orders(BTC)) == 1
    sim.advance(60_001)
    assert await client.fetch_open_orders(BTC) == []
    assert len(await client.fetch_open_orders(ETH)) == 1  # other symbols untouched
    await client.create_order(BTC, "limit", "buy", 0.01, 59000)
    await client.fapiprivate_post_countdowncancelall({"symbol": "BTCUSDT", "countdownTime": 10000})
    await client.fapiprivate_post_countdowncancelall({"symbol": "BTCUSDT", "countdownTime": 0})
    sim.advance(20_000)
    assert len(await client.fetch_open_orders(BTC)) == 1  # disarmed


@pytest.mark.asyncio
async def test_api_restrictions_and_permissions(sim: SimHandle) -> None:
    key, secret = sim.create_account()
    ex = make_async(sim, key, secret)
    ro_key, ro_secret = sim.create_account(
        permissions={"enableFutures": False, "ipRestrict": False}
    )
    ro = make_async(sim, ro_key, ro_secret)
    try:
        restrictions = await ex.sapi_get_account_apirestrictions()
        assert restrictions["enableFutures"] is True
        assert restrictions["enableReading"] is True
        assert restrictions["enableWithdrawals"] is False
        assert restrictions["ipRestrict"] is True
        assert isinstance(restrictions["createTime"], int)
        expected = {
            "ipRestrict",
            "createTime",
            "enableReading",
            "enableFutures",
            "enableWithdrawals",
            "enableInternalTransfer",
            "permitsUniversalTransfer",
            "enableMargin",
            "enableSpotAndMarginTrading",
            "enableVanillaOptions",
            "enablePortfolioMarginTrading",
            "enableFixApiTrade",
            "enableFixReadOnly",
        }
        assert set(restrictions) == expected
        ro_restrictions = await ro.sapi_get_account_apirestrictions()
        assert ro_restrictions["enableFutures"] is False
        assert ro_restrictions["ipRestrict"] is False
        await ro.load_markets()
        with pytest.raises(ccxt.AuthenticationError) as info:
            await ro.fetch_balance()
        assert "-2015" in str(info.value)
    finally:
        await ex.close()
        await ro.close()
