"""Market-mechanics conformance: funding, premium index, index basket and mark price.

Sources:
- Funding rates (every 8 h, some symbols 4 h / 1 h; premium index from impact bid/ask;
  F = P + clamp(I - P, 0.05 %, -0.05 %), I = 0.01 %):
  https://www.binance.com/en/support/faq/introduction-to-binance-futures-funding-rates-360033525031
- 2025-09-18 update (F scaled by N/8 for an N-hour interval; price 2 on a 30-second basis):
  https://www.binance.com/en/support/announcement (Binance Futures funding-rate and mark
  price formula update, 2025-09-16)
- Mark price and price index (median(price 1, price 2, contract price); index = weighted
  spot basket; a source > 5 % off the median gets weight 0, more than one -> the median):
  https://www.binance.com/en/support/faq/what-are-mark-price-and-price-index-in-usd%E2%93%A2-margined-futures-360033525071
- Mark Price endpoint (premiumIndex fields):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Mark-Price
"""

from __future__ import annotations

import random
import statistics

import pytest

from perpbot.sim import SimHandle
from perpbot.sim.config import FundingConfig, SymbolConfig
from perpbot.sim.pricing import Pricing

from .conftest import BTC, make_async, quiet_config, quiet_market

HOUR = 3_600_000


def _symbols(btc_h: int | None = None, eth_h: int | None = 4) -> list[SymbolConfig]:
    return [
        SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0, funding_interval_h=btc_h),
        SymbolConfig(
            symbol="ETHUSDT",
            base_asset="ETH",
            price=3000.0,
            tick_size="0.01",
            min_price="0.01",
            crowd_level_step_ticks=5,
            crowd_level_qty=12.0,
            funding_interval_h=eth_h,
        ),
    ]


@pytest.mark.asyncio
async def test_funding_every_8h_by_default_4h_per_symbol(sim_factory) -> None:
    """Quiet book (premium index 0): F = 0 + clamp(0.01 % - 0) = 0.01 % per 8 h, x 4/8."""
    sim = sim_factory(quiet_config(market=quiet_market(tick_ms=2000), symbols=_symbols()))
    ex = make_async(sim, *sim.create_account())
    try:
        btc, eth = await ex.fapiPublicGetPremiumIndex()
        assert int(btc["nextFundingTime"]) % (8 * HOUR) == 0
        assert int(eth["nextFundingTime"]) % (4 * HOUR) == 0
        assert btc["interestRate"] == "0.00010000" and btc["lastFundingRate"] == "0.00010000"
        assert eth["lastFundingRate"] == "0.00005000"
        await ex.create_order(BTC, "market", "buy", 0.1)
        now = sim.state()["server_time"]
        sim.advance(int(btc["nextFundingTime"]) - now + 1000)
        state = sim.state()
        events = [e for e in state["funding_history"] if e["symbol"] == "BTCUSDT"]
        assert [e["fundingTime"] for e in events] == [int(btc["nextFundingTime"])]
        eth_events = [e for e in state["funding_history"] if e["symbol"] == "ETHUSDT"]
        eth_due = range(int(eth["nextFundingTime"]), int(btc["nextFundingTime"]) + 1001, 4 * HOUR)
        assert [e["fundingTime"] for e in eth_events] == list(eth_due)
        assert all(e["rate"] == pytest.approx(0.00005) for e in eth_events)
        fees = await ex.fapiPrivateGetIncome({"incomeType": "FUNDING_FEE"})
        assert len(fees) == 1  # 8 h of holding: one payment, not 960
        paid = -0.1 * events[0]["mark"] * events[0]["rate"]
        assert float(fees[0]["income"]) == pytest.approx(paid)
        assert paid == pytest.approx(-0.6, rel=1e-3)  # 0.01 % of 6000 USDT
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_rate_follows_the_premium_and_changes_sign(sim_factory) -> None:
    """Hourly funding over 3 days of a market whose premium drifts: both signs, capped."""
    cfg = quiet_config(
        seed=1,
        market=quiet_market(
            tick_ms=30_000, premium_vol=0.0004, premium_regime_vol=0.0006, venue_noise=0.0001
        ),
        symbols=_symbols(btc_h=1)[:1],
        funding=FundingConfig(rate_cap=0.003),
    )
    sim = sim_factory(cfg)
    key, secret = sim.create_account()
    ex = make_async(sim, key, secret)
    try:
        await ex.create_order(BTC, "market", "sell", 0.01)
        for _ in range(72):
            sim.advance(HOUR)
        state = sim.state()
        events = state["funding_history"]
        rates = [e["rate"] for e in events]
        assert len(events) == 72
        assert min(rates) < 0 < max(rates)  # changes sign
        assert all(abs(r) <= 0.003 for r in rates)
        assert len(set(rates)) > 10  # not a constant
        fees = await ex.fapiPrivateGetIncome({"incomeType": "FUNDING_FEE", "limit": 1000})
        paid = sum(float(f["income"]) for f in fees)
        assert paid == pytest.approx(sum(0.01 * e["mark"] * e["rate"] for e in events))
    finally:
        await ex.close()


def test_funding_formula_on_known_samples() -> None:
    """F = [P + clamp(I - P, +-0.05 %)] x N/8 with P the 1..n weighted average, capped."""
    p = Pricing.create(quiet_market(), 1, 100.0, 0, 8 * HOUR, None, 0.003)
    assert p.rate_from([0.0]) == pytest.approx(0.0001)
    avg = (1 * 0.001 + 2 * 0.002) / 3  # weights 1..n
    assert p.rate_from([0.001, 0.002]) == pytest.approx(avg - 0.0005)
    assert p.rate_from([-0.002]) == pytest.approx(-0.002 + 0.0005)
    assert p.rate_from([0.05]) == 0.003  # capped
    hourly = Pricing.create(quiet_market(), 1, 100.0, 0, HOUR, None, 0.003)
    assert hourly.rate_from([-0.002]) == pytest.approx((-0.002 + 0.0005) / 8)


def test_index_basket_drops_down_stale_and_outlier_venues() -> None:
    p = Pricing.create(quiet_market(index_venues=5), 3, 100.0, 0, 8 * HOUR, None, 0.003)
    now = 5_000
    for i, v in enumerate(p.venues):
        v.price, v.quoted_ms, v.weight = 100.0 + i, now, 1.0 + i
    assert p.basket(now) == pytest.approx(sum((100 + i) * (1 + i) for i in range(5)) / 15)
    p.venues[0].down_until = now + 1  # outage
    p.venues[1].quoted_ms = now - 11_000  # stale beyond 10 s
    p.venues[4].price = 120.0  # > 5 % off the median: weight 0
    assert p.basket(now) == pytest.approx((102 * 3 + 103 * 4) / 7)
    p.venues[3].price = 80.0  # two outliers: the median of the live venues
    assert p.basket(now) == statistics.median([102.0, 80.0, 120.0])


@pytest.mark.asyncio
async def test_mark_is_median_of_index_prices_and_last(sim_factory) -> None:
    """A perp-only print does not drag the mark: median(price 1, price 2, last price)."""
    sim = sim_factory(quiet_config(market=quiet_market(tick_ms=2000)))
    client = make_async(sim, *sim.create_account())
    try:
        await _mark_case(sim, client)
    finally:
        await client.close()


async def _mark_case(sim: SimHandle, client) -> None:
    state = sim.state()
    left = state["markets"]["BTCUSDT"]["next_funding_time"] - state["server_time"]
    if left < 2000:  # the clock started in the last 2 s of an interval: past it first
        sim.advance(left)
        state = sim.state()
    sim.advance(state["markets"]["BTCUSDT"]["next_funding_time"] - state["server_time"] - 2000)
    await client.create_order(BTC, "market", "buy", 2)  # walks the crowd asks up
    m = sim.state()["markets"]["BTCUSDT"]
    last, index, mark = float(m["last_price"]), float(m["index"]), float(m["mark"])
    assert last > index  # the print is above the basket
    left = (m["next_funding_time"] - sim.state()["server_time"]) / m["funding_interval_ms"]
    price1 = index * (1 + m["funding_rate"] * left)
    price2 = index + m["basis_avg"]
    # (price 1 is evaluated at the last market step, up to one step before server_time)
    assert mark == pytest.approx(statistics.median([price1, price2, last]), abs=0.01)
    assert mark < last
    prem = await client.fapiPublicGetPremiumIndex({"symbol": "BTCUSDT"})
    assert float(prem["markPrice"]) == pytest.approx(mark, abs=1e-6)
    assert float(prem["indexPrice"]) == pytest.approx(index, abs=1e-6)


def test_premium_process_is_seeded_and_leaves_the_walk_alone() -> None:
    a = Pricing.create(quiet_market(premium_vol=0.0004), 5, 100.0, 0, HOUR, None, 0.003)
    b = Pricing.create(quiet_market(premium_vol=0.0004), 5, 100.0, 0, HOUR, None, 0.003)
    rng_state = random.Random(1).getstate()
    for t in range(1, 200):
        a.step(1.0, t * 1000, 100.0)
        b.step(1.0, t * 1000, 100.0)
    assert a.premium == b.premium != 0.0 and a.index == b.index
    assert random.Random(1).getstate() == rng_state


@pytest.mark.asyncio
async def test_mark_and_index_price_klines(sim_factory) -> None:
    """Mark Price Kline / Index Price Kline endpoints (market-data/rest-api): the series the
    simulator's mark and index actually followed, "0" in the volume fields."""
    sim = sim_factory(quiet_config(market=quiet_market(premium_vol=0.002, tick_ms=1000)))
    ex = make_async(sim)
    try:
        sim.advance(5 * 60_000)
        mark = await ex.fetch_ohlcv(BTC, "1m", None, 5, {"price": "mark"})
        index = await ex.fetch_ohlcv(BTC, "1m", None, 5, {"price": "index"})
        trades = await ex.fetch_ohlcv(BTC, "1m", None, 5)
        assert len(mark) == len(index) == 5
        assert [c[0] for c in mark] == [c[0] for c in trades]
        assert mark[-1][5] == 0 and index[-1][5] == 0  # no volume on price series
        state = sim.state()["markets"]["BTCUSDT"]
        assert mark[-1][4] == pytest.approx(float(state["mark"]), abs=0.1)
        assert index[-1][4] == pytest.approx(float(state["index"]), abs=0.1)
        assert any(m[4] != i[4] for m, i in zip(mark, index, strict=True))
        raw = await ex.fapiPublicGetMarkPriceKlines(
            {"symbol": "BTCUSDT", "interval": "1m", "limit": 1}
        )
        assert raw[0][5] == "0" and raw[0][8] > 0
    finally:
        await ex.close()
