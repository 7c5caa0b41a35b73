"""Server-side rate limits: usage headers, 429 + Retry-After, 418 escalation, tightening."""

from __future__ import annotations

import ccxt
import pytest

from perpbot.sim import SimHandle
from perpbot.sim.config import LimitsConfig

from .conftest import BTC, make_async, quiet_config

SMALL = LimitsConfig(
    weight_per_window=30,
    weight_window_s=10,
    orders_per_short_window=3,
    short_window_s=10,
    orders_per_long_window=5,
    long_window_s=60,
    ban_base_s=20,
)


@pytest.mark.asyncio
async def test_usage_headers_on_every_response(sim: SimHandle, client) -> None:
    await client.fetch_time()
    first = int(client.last_response_headers["X-MBX-USED-WEIGHT-1M"])
    await client.fetch_order_book(BTC)  # no limit -> Binance default 500 -> weight 10
    assert int(client.last_response_headers["X-MBX-USED-WEIGHT-1M"]) == first + 10
    await client.create_order(BTC, "limit", "buy", 0.01, 59000)
    headers = client.last_response_headers
    assert headers["X-MBX-ORDER-COUNT-10S"] == "1" and headers["X-MBX-ORDER-COUNT-1M"] == "1"
    assert int(headers["X-MBX-USED-WEIGHT-1M"]) == first + 10  # POST order: weight 0
    with pytest.raises(ccxt.OrderNotFound):
        await client.fetch_order("1", BTC)
    assert "X-MBX-USED-WEIGHT-1M" in client.last_response_headers  # errors carry it too


@pytest.mark.asyncio
async def test_429_then_418_escalating_ban(sim_factory) -> None:
    handle = sim_factory(quiet_config(limits=SMALL))
    ex = make_async(handle)
    try:
        info = await ex.fapiPublicGetExchangeInfo()
        assert info["rateLimits"][0] == {
            "rateLimitType": "REQUEST_WEIGHT",
            "interval": "SECOND",
            "intervalNum": 10,
            "limit": 30,
        }
        handle.advance(10_000 - handle.state()["server_time"] % 10_000)  # window start
        for _ in range(30):
            await ex.fetch_time()
        assert ex.last_response_headers["X-MBX-USED-WEIGHT-10S"] == "30"
        handle.advance(3_000)
        with pytest.raises(ccxt.DDoSProtection) as exc:
            await ex.fetch_time()
        assert "429" in str(exc.value) and "-1003" in str(exc.value)
        assert ex.last_response_headers["Retry-After"] == "7"
        for _ in range(2):  # ignoring the Retry-After: 429 again, not yet a ban
            with pytest.raises(ccxt.DDoSProtection) as exc:
                await ex.fetch_time()
            assert "429" in str(exc.value) and ex.last_response_headers["Retry-After"] == "7"
        with pytest.raises(ccxt.DDoSProtection) as exc:  # the repeated violator is banned
            await ex.fetch_time()
        assert "418" in str(exc.value)
        assert ex.last_response_headers["Retry-After"] == "20"
        handle.advance(20_000)
        await ex.fetch_time()  # ban over, new window
        for _ in range(29):
            await ex.fetch_time()
        for _ in range(3):
            with pytest.raises(ccxt.DDoSProtection):
                await ex.fetch_time()
        with pytest.raises(ccxt.DDoSProtection):
            await ex.fetch_time()
        assert ex.last_response_headers["Retry-After"] == "40"  # the second ban doubles
        counters = handle.state()["counters"]
        assert counters["http_429"] == 6 and counters["http_418"] == 2
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_weight_is_shared_by_all_keys_from_one_ip(sim_factory) -> None:
    handle = sim_factory(quiet_config(limits=SMALL))
    a = make_async(handle, *handle.create_account())
    b = make_async(handle, *handle.create_account())
    try:
        handle.advance(10_000 - handle.state()["server_time"] % 10_000)
        for _ in range(15):
            await a.fetch_time()
            await b.fetch_time()
        with pytest.raises(ccxt.DDoSProtection):
            await b.fetch_time()
    finally:
        await a.close()
        await b.close()


@pytest.mark.asyncio
async def test_order_count_limit(sim_factory) -> None:
    handle = sim_factory(quiet_config(limits=SMALL))
    ex = make_async(handle, *handle.create_account())
    try:
        await ex.load_markets()
        handle.advance(60_000 - handle.state()["server_time"] % 60_000)
        for i in range(3):
            await ex.create_order(BTC, "limit", "buy", 0.01, 59000 - i)
        with pytest.raises(ccxt.DDoSProtection) as exc:
            await ex.create_order(BTC, "limit", "buy", 0.01, 58000)
        assert "-1015" in str(exc.value) and "TEN_SECONDS" in str(exc.value)
        assert ex.last_response_headers["Retry-After"] == "10"
        handle.advance(10_000)
        await ex.create_order(BTC, "limit", "buy", 0.01, 58000)  # 5th attempt this minute
        with pytest.raises(ccxt.DDoSProtection) as exc:  # rejected attempts count too
            await ex.create_order(BTC, "limit", "buy", 0.01, 58002)
        assert "5 orders per MINUTE." in str(exc.value)
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_mid_run_tightening_follows_in_exchange_info(sim: SimHandle, client) -> None:
    sim.set_faults({"limits": {"weight_per_window": 100, "weight_window_s": 10}})
    info = await client.fapiPublicGetExchangeInfo()
    assert info["rateLimits"][0]["limit"] == 100
    assert info["rateLimits"][0]["intervalNum"] == 10
    await client.fetch_time()
    assert "X-MBX-USED-WEIGHT-10S" in client.last_response_headers
    sim.set_faults({})
    info = await client.fapiPublicGetExchangeInfo()
    assert info["rateLimits"][0]["limit"] == 2400
