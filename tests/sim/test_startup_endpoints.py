"""Endpoints a bot calls at start-up or in reconciliation, driven through ccxt.

Sources (Binance USD-M REST, developers.binance.com/docs/derivatives/usds-margined-futures/):
account/rest-api/Futures-Account-Balance-V3, account/rest-api/User-Commission-Rate,
trade/rest-api/All-Orders, market-data/rest-api/Get-Funding-Rate-History,
market-data/rest-api/Get-Funding-Rate-Info, market-data/rest-api/Recent-Trades-List,
market-data/rest-api/Compressed-Aggregate-Trades-List, market-data/rest-api/Open-Interest,
trade/rest-api/Users-Force-Orders, trade/rest-api/Position-ADL-Quantile-Estimation,
account/rest-api/Futures-Trading-Quantitative-Rules-Indicators,
account/rest-api/Get-Current-Multi-Assets-Mode, account/rest-api/Get-Current-Position-Mode.
"""

from __future__ import annotations

import ccxt
import pytest

from perpbot.sim.config import FundingConfig

from .conftest import BTC, make_async, quiet_config


@pytest.mark.asyncio
async def test_startup_and_reconciliation_endpoints(sim_factory) -> None:
    sim = sim_factory(quiet_config(funding=FundingConfig(interval_s=60)))
    key, secret = sim.create_account()
    ex = make_async(sim, key, secret)
    try:
        await ex.load_markets()
        (bal,) = await ex.fapiPrivateV3GetBalance()
        assert bal["asset"] == "USDT" and float(bal["balance"]) == 10000.0
        assert list(bal) == [
            "accountAlias", "asset", "balance", "crossWalletBalance", "crossUnPnl",
            "availableBalance", "maxWithdrawAmount", "marginAvailable", "updateTime",
        ]  # fmt: skip
        fee = await ex.fetch_trading_fee(BTC)
        assert (fee["maker"], fee["taker"]) == (0.0002, 0.0005)
        await ex.create_order(BTC, "market", "buy", 0.01)
        resting = await ex.create_order(BTC, "limit", "buy", 0.01, 59000)
        await ex.cancel_order(resting["id"], BTC)
        orders = await ex.fetch_orders(BTC)
        assert [o["status"] for o in orders] == ["closed", "canceled"]
        sim.advance(120_000)
        history = await ex.fetch_funding_rate_history(BTC)
        scaled = round(0.0001 * 60 / 28800, 8)  # I x N/8 for a 60 s interval, quiet book
        assert len(history) >= 2 and all(h["fundingRate"] == scaled for h in history)
        info = await ex.fapiPublicGetFundingInfo()
        assert {i["symbol"] for i in info} == {"BTCUSDT", "ETHUSDT"}
        trades = await ex.fetch_trades(BTC)
        assert trades and trades[-1]["price"] == 60000.0
        raw = await ex.fapiPublicGetTrades({"symbol": "BTCUSDT", "limit": 5})
        assert set(raw[0]) == {"id", "price", "qty", "quoteQty", "time", "isBuyerMaker"}
        oi = await ex.fetch_open_interest(BTC)
        assert oi["openInterestAmount"] == 0.01
        assert await ex.fapiPrivateGetForceOrders({"symbol": "BTCUSDT"}) == []
        adl = await ex.fapiPrivateGetAdlQuantile({"symbol": "BTCUSDT"})
        assert adl[0]["adlQuantile"]["BOTH"] == 4  # the only long: first in line
        assert (await ex.fapiPrivateGetApiTradingStatus())["indicators"] == {}
        assert await ex.fapiPrivateGetMultiAssetsMargin() == {"multiAssetsMargin": False}
        assert await ex.fapiPrivateGetPositionSideDual() == {"dualSidePosition": False}
        config = await ex.fapiPrivateGetAccountConfig()
        assert config["canTrade"] is True and config["dualSidePosition"] is False
        limits = await ex.fapiPrivateGetRateLimitOrder()
        assert [(r["interval"], r["intervalNum"]) for r in limits] == [
            ("MINUTE", 1),
            ("SECOND", 10),
        ]
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_order_test_validates_without_placing(sim, client) -> None:
    """trade/rest-api/Test-Order: the new order's checks, nothing sent to the matching engine."""
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    assert (
        await client.fapiPrivatePostOrderTest({**order, "quantity": "0.01", "price": "59000"}) == {}
    )
    with pytest.raises(ccxt.ExchangeError) as exc:
        await client.fapiPrivatePostOrderTest({**order, "quantity": "0.01", "price": "180000"})
    assert "-4016" in str(exc.value)
    assert sim.state()["orders"] == []
