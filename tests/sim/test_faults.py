"""Fault injection: lost responses after commit, drops, 5xx, latency, skew, frozen feed."""

from __future__ import annotations

import time

import ccxt
import pytest

from perpbot.sim import SimHandle

from .conftest import BTC, make_async, make_sync, quiet_config


@pytest.mark.asyncio
async def test_lost_response_after_commit_async(sim: SimHandle, client) -> None:
    sim.set_faults({"lost_response": {"rate": 1.0, "count": 1}})
    with pytest.raises(ccxt.NetworkError):
        await client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "lost-1"})
    found = await client.fetch_order(None, BTC, {"origClientOrderId": "lost-1"})
    assert found["status"] == "open"  # the exchange committed it
    orders = [o for o in sim.state()["orders"] if o["clientOrderId"] == "lost-1"]
    assert len(orders) == 1
    assert sim.state()["counters"]["lost_responses"] == 1
    again = await client.create_order(BTC, "limit", "buy", 0.01, 58000)  # count exhausted
    assert again["status"] == "open"


@pytest.mark.asyncio
async def test_lost_response_held_past_client_timeout(sim: SimHandle) -> None:
    key, secret = sim.create_account()
    ex = make_async(sim, key, secret, timeout=400)
    try:
        await ex.load_markets()
        sim.set_faults(
            {"lost_response": {"rate": 1.0, "count": 1, "mode": "hold", "hold_ms": 2000}}
        )
        started = time.monotonic()
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "held"})
        assert time.monotonic() - started < 1.5
        assert (await ex.fetch_open_orders(BTC))[0]["clientOrderId"] == "held"
    finally:
        await ex.close()


def test_lost_response_sync_client(sim: SimHandle) -> None:
    ex = make_sync(sim, *sim.create_account())
    ex.load_markets()
    sim.set_faults({"lost_response": {"rate": 1.0, "count": 1}})
    with pytest.raises(ccxt.NetworkError):
        ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "lost-sync"})
    assert ex.fetch_order(None, BTC, {"origClientOrderId": "lost-sync"})["status"] == "closed"


@pytest.mark.asyncio
async def test_dropped_connection_and_injected_errors(sim: SimHandle, client) -> None:
    sim.set_faults({"drop": {"rate": 1.0, "count": 1, "paths": ["/fapi/v1/order"]}})
    with pytest.raises(ccxt.NetworkError):
        await client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "drop-1"})
    with pytest.raises(ccxt.OrderNotFound):  # dropped before processing: nothing committed
        await client.fetch_order(None, BTC, {"origClientOrderId": "drop-1"})
    sim.set_faults({"errors": {"rate": 1.0, "count": 3, "statuses": [503]}})
    with pytest.raises(ccxt.ExchangeNotAvailable):
        await client.fetch_time()
    sim.set_faults({"errors": {"rate": 1.0, "count": 1, "statuses": [504]}})
    with pytest.raises(ccxt.RequestTimeout):
        await client.fetch_time()
    sim.set_faults({"errors": {"rate": 1.0, "count": 1, "statuses": [503], "body": "json"}})
    with pytest.raises(ccxt.OperationFailed):
        await client.fetch_time()
    await client.fetch_time()
    counters = sim.state()["counters"]
    assert counters["dropped"] == 1 and counters["injected_errors"] == 3


@pytest.mark.asyncio
async def test_probabilistic_faults_are_seeded(sim_factory) -> None:
    outcomes = []
    for _ in range(2):
        handle = sim_factory(quiet_config())
        handle.set_faults({"errors": {"rate": 0.5, "statuses": [500, 502]}})
        ex = make_async(handle)
        seen = []
        try:
            for _ in range(20):
                try:
                    await ex.fetch_time()
                    seen.append(200)
                except ccxt.ExchangeNotAvailable as exc:
                    seen.append(502 if "502" in str(exc) else 500)
        finally:
            await ex.close()
        outcomes.append(seen)
    assert outcomes[0] == outcomes[1]
    assert {200, 500, 502} <= set(outcomes[0])


@pytest.mark.asyncio
async def test_latency(sim: SimHandle, client) -> None:
    sim.set_faults({"latency": {"fixed_ms": 150, "jitter_ms": 50}})
    started = time.monotonic()
    await client.fetch_time()
    assert 0.15 <= time.monotonic() - started < 1.0


@pytest.mark.asyncio
async def test_clock_skew(sim: SimHandle, client) -> None:
    before = await client.fetch_time()
    sim.set_faults({"clock_skew_ms": 30_000})
    skewed = await client.fetch_time()
    assert skewed - before >= 29_000
    with pytest.raises(ccxt.InvalidNonce):  # our timestamps now look 30 s old
        await client.fetch_balance()
    await client.load_time_difference()
    assert (await client.fetch_balance())["USDT"]["total"] == 10000.0


@pytest.mark.asyncio
async def test_frozen_feed_thin_book_and_jump(sim_factory) -> None:
    from perpbot.sim.config import MarketConfig

    market = MarketConfig(volatility=0.0005, jump_rate=0.0, taker_rate=1.0, history_minutes=10)
    handle = sim_factory(quiet_config(market=market))
    ex = make_async(handle)
    try:
        await ex.load_markets()
        handle.set_faults({"freeze_prices": True})
        first = await ex.fetch_ticker(BTC)
        mark = await ex.fetch_mark_price(BTC)
        handle.advance(5_000)
        second = await ex.fetch_ticker(BTC)
        mark2 = await ex.fetch_mark_price(BTC)
        assert second["timestamp"] == first["timestamp"] and second["last"] == first["last"]
        assert mark2["info"]["time"] == mark["info"]["time"]
        assert mark2["markPrice"] == mark["markPrice"]
        handle.set_faults({})
        handle.advance(5_000)
        third = await ex.fetch_mark_price(BTC)
        assert third["info"]["time"] > mark["info"]["time"]
        full = await ex.fetch_order_book(BTC, 1000)
        handle.set_faults({"thin_book": 0.1})
        thin = await ex.fetch_order_book(BTC, 1000)
        assert sum(q for _, q in thin["asks"]) < 0.2 * sum(q for _, q in full["asks"])
        handle.set_faults({"price_jump": {"BTCUSDT": -10.0}})
        after = await ex.fetch_mark_price(BTC)
        assert after["markPrice"] == pytest.approx(third["markPrice"] * 0.9, rel=0.001)
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_bad_fault_plan_rejected(sim: SimHandle) -> None:
    import json
    import urllib.request
    from urllib.error import HTTPError

    req = urllib.request.Request(
        sim.base_url + "/__sim/faults",
        method="POST",
        data=json.dumps({"errors": {"rate": 2}}).encode(),
    )
    with pytest.raises(HTTPError) as info:
        urllib.request.urlopen(req, timeout=5)
    assert info.value.code == 400
    assert "rate" in json.loads(info.value.read())["error"]
