"""Fault injection: lost and delayed responses after commit, drops, 5xx, latency, skew,
frozen feed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import ccxt
import pytest

from perpbot.errors import BadInput
from perpbot.sim import SimConfig, SimHandle

from .conftest import BTC, make_async, make_sync, quiet_config
from .ws_support import next_event, ws_url


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


async def _stream_event(ws: aiohttp.ClientWebSocketResponse, event: str, status: str) -> Any:
    """The next ORDER_TRADE_UPDATE with order status ``status``, or the next other event."""
    while True:
        got = await next_event(ws, event)
        if event != "ORDER_TRADE_UPDATE" or got["o"]["X"] == status:
            return got


@pytest.mark.asyncio
async def test_delayed_response_answers_after_the_order_filled_and_streamed(
    sim_factory: Any,
) -> None:
    """The order is processed (filled, on the account, its events on the user stream) while
    the client still waits for the answer; the answer then comes, late but whole."""
    handle = sim_factory(quiet_config(clock="wall"))
    key, secret = handle.create_account()
    ex = make_async(handle, key, secret)
    try:
        await ex.load_markets()
        async with aiohttp.ClientSession() as session:
            lk = (await control_key(session, handle, key))["listenKey"]
            async with session.ws_connect(ws_url(handle, "/private/ws?listenKey=" + lk)) as ws:
                handle.set_faults({"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": 1500}})
                started = time.monotonic()
                placing = asyncio.create_task(
                    ex.create_order(BTC, "market", "buy", 0.01, None, {"clientOrderId": "late-1"})
                )
                fill = await _stream_event(ws, "ORDER_TRADE_UPDATE", "FILLED")
                await _stream_event(ws, "ACCOUNT_UPDATE", "")
                assert not placing.done()  # the fill is out, the answer is not
                truth = handle.state()
                [record] = [o for o in truth["orders"] if o["clientOrderId"] == "late-1"]
                assert record["status"] == "FILLED" and float(record["executedQty"]) == 0.01
                assert [t["orderId"] for t in truth["trades"]] == [record["orderId"]]
                [acct] = truth["accounts"]
                assert float(acct["positions"][0]["positionAmt"]) == 0.01
                order = await placing
                waited = time.monotonic() - started
        assert waited >= 1.5
        assert order["id"] == str(record["orderId"]) == str(fill["o"]["i"])
        assert order["status"] == "closed" and order["filled"] == 0.01
        assert handle.state()["counters"]["delayed_responses"] == 1
        started = time.monotonic()
        await ex.create_order(BTC, "limit", "buy", 0.01, 59000)  # count exhausted: at once
        assert time.monotonic() - started < 1.0
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_delayed_cancel_and_resting_order_are_committed_before_the_answer(
    sim: SimHandle, client
) -> None:
    """A resting order is on the book, and a cancelled one off it, while their answers wait."""
    sim.set_faults({"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": 1000}})
    placing = asyncio.create_task(
        client.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "late-rest"})
    )
    await until(lambda: sim.state()["open_orders"])
    assert not placing.done()
    [resting] = sim.state()["open_orders"]
    assert resting["clientOrderId"] == "late-rest" and resting["status"] == "NEW"
    order = await placing
    assert order["status"] == "open" and order["id"] == str(resting["orderId"])
    sim.set_faults(
        {"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": 1000, "methods": ["DELETE"]}}
    )
    cancelling = asyncio.create_task(client.cancel_order(order["id"], BTC))
    await until(lambda: not sim.state()["open_orders"])
    assert not cancelling.done()
    [record] = [o for o in sim.state()["orders"] if o["clientOrderId"] == "late-rest"]
    assert record["status"] == "CANCELED"
    assert (await cancelling)["status"] == "canceled"
    assert sim.state()["counters"]["delayed_responses"] == 2


@pytest.mark.asyncio
async def test_delayed_response_past_the_client_timeout_leaves_one_order(sim: SimHandle) -> None:
    key, secret = sim.create_account()
    ex = make_async(sim, key, secret, timeout=400)
    try:
        await ex.load_markets()
        sim.set_faults({"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": 1500}})
        with pytest.raises(ccxt.RequestTimeout):
            await ex.create_order(BTC, "limit", "buy", 0.01, 59000, {"clientOrderId": "late-t"})
        assert [o["clientOrderId"] for o in sim.state()["orders"]] == ["late-t"]
        assert (await ex.fetch_open_orders(BTC))[0]["clientOrderId"] == "late-t"
    finally:
        await ex.close()


def test_delayed_response_from_sim_toml(tmp_path: Any) -> None:
    toml = tmp_path / "sim.toml"
    toml.write_text(
        '[faults.delayed_response]\nrate = 1.0\ncount = 2\ndelay_ms = 250\nmethods = ["DELETE"]\n'
    )
    plan = SimConfig.from_toml(toml).faults.delayed_response
    assert (plan.rate, plan.count, plan.delay_ms, plan.methods) == (1.0, 2, 250, ["DELETE"])
    assert plan.paths == ["/fapi/v1/order", "/fapi/v1/batchOrders"]
    toml.write_text("[faults.delayed_response]\ndelay_ms = -1\n")
    with pytest.raises(BadInput, match="delay_ms"):
        SimConfig.from_toml(toml)


async def until(pred: Any, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(pred):
        assert time.monotonic() < deadline, "condition not met"
        await asyncio.sleep(0.02)


async def control_key(session: aiohttp.ClientSession, handle: SimHandle, key: str) -> Any:
    async with session.post(
        handle.base_url + "/fapi/v1/listenKey", headers={"X-MBX-APIKEY": key}
    ) as resp:
        return await resp.json()
