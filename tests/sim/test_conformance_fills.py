"""Fill realism: queue position, fills from trade flow, lasting impact, market protection.

Sources:
- Matching is price-time priority (FIFO within a price level): "Orders are prioritized
  using the FIFO or price-time-priority algorithm based on their order price and order
  time", Binance Futures, open order modification FAQ:
  https://www.binance.com/en/support/faq/how-to-modify-open-orders-on-binance-futures-9a2f8eb5b2a34d6a8e9a7a2b7c1b1d40
- marketTakeBound (exchangeInfo) and the market-order price protection it sets:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information
- Symbol Order Book Ticker (bidPrice / askPrice are the best levels of the book):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Symbol-Order-Book-Ticker
"""

from __future__ import annotations

from typing import Any

import pytest

from perpbot.sim.config import SymbolConfig

from .conftest import BTC, make_async, quiet_config, quiet_market


def _order(sim: Any, order_id: str) -> dict[str, Any]:
    return next(o for o in sim.state()["orders"] if str(o["orderId"]) == order_id)


@pytest.mark.asyncio
async def test_resting_order_waits_behind_displayed_size_and_fills_partially(
    sim_factory,
) -> None:
    """A bid at the touch queues behind the crowd's displayed size; trade flow fills it."""
    sim = sim_factory(quiet_config(market=quiet_market(taker_rate=4.0)))
    ex = make_async(sim, *sim.create_account(balance=100_000))
    try:
        book = await ex.fetch_order_book(BTC, 5)
        best_bid = book["bids"][0][0]
        displayed = book["bids"][0][1]
        placed = await ex.create_order(BTC, "limit", "buy", 0.5, best_bid, {"postOnly": True})
        ahead = float(_order(sim, placed["id"])["queueAhead"])
        assert ahead == pytest.approx(displayed)  # FIFO: behind what was shown
        seen: list[tuple[int, float, float, str]] = []
        for step in range(600):
            sim.advance(200)
            rec = _order(sim, placed["id"])
            seen.append((step, float(rec["queueAhead"]), float(rec["executedQty"]), rec["status"]))
            if rec["status"] == "FILLED":
                break
        first_fill = next(s for s in seen if s[2] > 0)
        assert first_fill[0] > 0  # not the moment it touched
        assert all(q == 0 for _, q, x, _ in seen if x > 0)  # fills only once the queue is gone
        assert any(st == "PARTIALLY_FILLED" for *_, st in seen)  # partial fills happen
        trades = [t for t in sim.state()["trades"] if str(t["orderId"]) == placed["id"]]
        assert len(trades) >= 2 and all(t["maker"] for t in trades)
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_a_large_bid_crossed_by_the_market_is_not_filled_in_one_print(sim_factory) -> None:
    sim = sim_factory(quiet_config())
    ex = make_async(sim, *sim.create_account(balance=3_000_000))
    try:
        bid = await ex.create_order(BTC, "limit", "buy", 200, 59400, {"postOnly": True})
        sim.jump("BTCUSDT", -1.5)  # the crowd's asks fall through 59400
        rec = _order(sim, bid["id"])
        filled = float(rec["executedQty"])
        assert 0 < filled < 200 and rec["status"] == "PARTIALLY_FILLED"
        # what it got is what the crowd offered at or below 59400, consumed
        book = await ex.fetch_order_book(BTC, 5)  # the bid holds the price: not crossed
        assert book["asks"][0][0] > 59400 and book["bids"][0][0] == 59400
        sim.jump("BTCUSDT", -0.5)  # the market pushes again: more trades through it
        assert float(_order(sim, bid["id"])["executedQty"]) > filled
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_impact_lasts_and_the_book_refills(sim_factory) -> None:
    """A 20 BTC market buy lifts the asks; they refill with the configured half-life and
    part of the move stays (the crowd re-quotes around a new price)."""
    sim = sim_factory(quiet_config(market=quiet_market(book_half_life_s=5.0)))
    ex = make_async(sim, *sim.create_account(balance=1_000_000))
    try:
        before = (await ex.fetch_order_book(BTC, 5))["asks"][0][0]
        await ex.create_order(BTC, "market", "buy", 20)
        after = (await ex.fetch_order_book(BTC, 5))["asks"][0][0]
        assert after > before + 1.0
        sim.advance(5_000)
        half = (await ex.fetch_order_book(BTC, 5))["asks"][0][0]
        sim.advance(60_000)
        late = (await ex.fetch_order_book(BTC, 5))["asks"][0][0]
        assert before < late < half < after  # recovers, but not all the way back
        assert (after - half) / (after - before) == pytest.approx(0.5, abs=0.2)
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_market_order_sweep_is_bounded_and_book_never_empty(sim_factory) -> None:
    """marketTakeBound: a MARKET order fills only within mark x (1 - 0.05); the rest expires.
    bookTicker never shows price "0" after a sweep."""
    wide = SymbolConfig(
        symbol="BTCUSDT",
        base_asset="BTC",
        price=60000.0,
        crowd_level_step_ticks=1000,  # 100 USDT between levels
        crowd_level_qty=0.5,
    )
    sim = sim_factory(quiet_config(symbols=[wide]))
    ex = make_async(sim, *sim.create_account(balance=1_000_000))
    try:
        info = await ex.fapiPublicGetExchangeInfo()
        assert info["symbols"][0]["marketTakeBound"] == "0.05"
        mark = float(sim.state()["markets"]["BTCUSDT"]["mark"])
        sold = await ex.create_order(BTC, "market", "sell", 110)
        assert sold["status"] == "expired" and 0 < sold["filled"] < 110
        trades = [t for t in sim.state()["trades"] if str(t["orderId"]) == sold["id"]]
        assert min(float(t["price"]) for t in trades) >= mark * 0.95 - 0.1
        ticker = await ex.fapiPublicGetTickerBookTicker({"symbol": "BTCUSDT"})
        assert float(ticker["bidPrice"]) > 0 and float(ticker["bidQty"]) > 0
        assert float(ticker["bidPrice"]) < float(ticker["askPrice"])
    finally:
        await ex.close()
