"""A 429 about the order count (Binance -1015), and one without Retry-After, end to end.

The simulator answers an order past its per-account order limit with 429 -1015 and a
Retry-After to the end of that order window; inside it, only orders are refused again
(reads pass). perpbot must cut this key's order-count budget (not the weight budget), keep
its reads flowing, report the refused create without resending it, and not earn a 418.
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from typing import Any

import ccxt
import pytest

from perpbot.client.request import OrderSpec
from tests.integration.ratelimit.test_ratelimit_adaptive import set_limits

SYMBOL = "BTC/USDT:USDT"
ORDER_WINDOW_S = 2  # the simulator's short order window (Binance: 10 s)
TICKER = "/fapi/v1/ticker/24hr"  # ccxt's fetch_ticker


async def until_next_order_window() -> None:
    await asyncio.sleep(ORDER_WINDOW_S - time.time() % ORDER_WINDOW_S + 0.05)


async def place(client: Any, price: float, n: int) -> Any:
    spec = OrderSpec(SYMBOL, "buy", "limit", 0.003, price, post_only=True, intent="t")
    spec.client_order_id = f"oc429-{n}"
    return await client.create_order(spec)


async def test_an_order_count_429_cuts_only_the_order_budget_and_reads_keep_flowing(
    sim_factory: Any, open_guarded: Any
) -> None:
    """freqtrade #5700 / #6745: Binance's 429 -1015 "Too many new orders" is about the
    account's order count. Only this key's order budgets are cut (the weight budget is
    not), reads go on during its Retry-After, the refused create is not resent (the
    simulator's orders are the truth), and nothing earns a 418."""
    sim = sim_factory(
        limits={"orders_per_short_window": 50, "short_window_s": ORDER_WINDOW_S},
    )
    stats = sim.server.stats
    async with open_guarded(sim, limits={"refresh_s": 60}) as (client, rec):
        limiter = client.pipeline.layer("ratelimit")
        price = round(float((await client.fetch_ticker(SYMBOL))["last"]) * 0.97, 1)
        before = limiter.snapshot()
        await until_next_order_window()
        placed = [await place(client, price, n) for n in range(3)]
        # the exchange lowers its order limit under what this window has used already:
        # perpbot's rules (re-read every 60 s) still say 50, so its next create meets it
        await asyncio.to_thread(set_limits, sim, orders_per_short_window=2)
        reading = True
        read_at: list[float] = []

        async def reader() -> None:  # reads, one at a time, all through
            while reading:
                await client.fetch_ticker(SYMBOL)
                read_at.append(time.monotonic())
                await asyncio.sleep(0.02)  # (paced: this test is not about the weight)

        readers = asyncio.ensure_future(reader())
        with pytest.raises(ccxt.DDoSProtection) as refused:
            await place(client, price, 3)
        refused_at = time.monotonic()
        during = limiter.snapshot()
        for _ in range(50):  # (the 429 is written to the store by its thread)
            if during["orders_blocked_for_s"]:
                break
            await asyncio.sleep(0.01)
            during = limiter.snapshot()
        # the next create is held until the Retry-After has passed, then placed
        placed.append(await place(client, price, 4))
        placed_at = time.monotonic()
        await asyncio.sleep(0.3)
        reading = False
        await readers
        after = limiter.snapshot()
    counters = sim.state()["counters"]
    assert counters["http_429"] == 1 and counters["http_418"] == 0, counters
    assert stats.rejects["-1015"] == 1
    [pushback] = [c for c in rec.calls if c.status == 429]
    assert pushback.error_code == -1015 and pushback.path == "/fapi/v1/order"
    assert "-1015" in str(refused.value)
    # no order arrived inside the Retry-After (the simulator counts them: 3 earn a 418)
    assert sim.server.engine.limits.ips["127.0.0.1"].ignored == 0
    until = pushback.mono + float(pushback.rate_headers["Retry-After"])
    assert placed_at >= until - 0.05
    # the simulator holds exactly the orders placed: the refused one never came back
    key = client.setup.credentials.api_key
    held = sorted(o.client_order_id for o in sim.server.engine.open_of(key))
    assert held == sorted(o["clientOrderId"] for o in placed)
    assert len(placed) == 4 and "oc429-3" not in held
    assert [c.path for c in rec.calls if c.http_method == "POST"].count("/fapi/v1/order") == 5
    # status says new orders wait, not that everything does
    assert 0 < during["orders_blocked_for_s"] <= ORDER_WINDOW_S
    assert during["blocked_for_s"] == 0
    # only this key's order-count budgets were cut
    cut = rec.of("RATE_TIGHTEN_429")
    mine = [d.data["bucket"] for d in cut]
    assert mine and all(b.startswith("orders/") and b.endswith(limiter.key_id) for b in mine)
    assert after["weight_nominal"] == before["weight_nominal"]
    assert after["weight_limit"] == before["weight_limit"]
    # reads kept flowing inside the Retry-After (the simulator answered them)
    inside = [t for t in read_at if refused_at < t < until - 0.05]
    assert len(inside) >= 3, (len(read_at), until - refused_at)
    assert stats.per_path[TICKER] >= len(read_at)


async def test_a_429_without_retry_after_is_held_to_the_end_of_the_window(
    sim_factory: Any, open_guarded: Any
) -> None:
    """freqtrade #5700 / #6745: a 429 that names no Retry-After (a proxy or gateway that
    strips the header) is held until the weight window ends (``_window_left``): no request
    reaches the simulator inside it (3 would earn a 418 there), and the read goes through
    once the window has turned."""
    window_s = 2
    sim = sim_factory(
        limits={"weight_per_window": 40, "weight_window_s": window_s, "retry_after_header": False}
    )
    async with open_guarded(sim, limits={"refresh_s": 60}) as (client, rec):
        await asyncio.sleep(window_s - time.time() % window_s + 0.05)  # a fresh window
        window_end = (time.time() // window_s + 1) * window_s
        depth = f"{sim.base_url}/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
        for _ in range(2):  # a careless client on the IP spends the window (2 x 20)
            urllib.request.urlopen(depth).close()
        ticker = await client.fetch_ticker(SYMBOL)  # meets the 429, waits, goes through
        answered = time.time()
    counters = sim.state()["counters"]
    assert counters["http_429"] == 1 and counters["http_418"] == 0, counters
    assert sim.server.engine.limits.ips["127.0.0.1"].ignored == 0  # none inside the window
    assert ticker["last"] > 0 and answered >= window_end
    [pushback] = [c for c in rec.calls if c.status == 429]
    assert pushback.error_code == -1003 and "Retry-After" not in pushback.rate_headers
    after = [c for c in rec.calls if c.mono > pushback.mono]
    assert after and all(c.status == 200 for c in after)
    # every later request left after the window the 429 was about had ended
    left = min(c.ts - c.latency_ms / 1000 for c in after)
    assert left >= window_end - 0.02, (left, window_end)
    [cut] = rec.of("RATE_TIGHTEN_429")
    assert cut.data["bucket"] == f"weight/{window_s}s"
    assert 1.0 <= cut.data["retry_after"] <= window_s  # the window's end, not a guess
