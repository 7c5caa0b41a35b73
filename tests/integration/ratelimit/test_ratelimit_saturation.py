"""One process, saturating load, real ccxt over HTTP to the simulator with shrunk windows."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from typing import Any

from bench.support.loadtest import WindowSampler
from bench.support.workload import Ops, drive

WINDOW_S = 2
BUDGET = 200
SYMBOL = "BTC/USDT:USDT"


def limited_sim(sim_factory: Any, budget: int = BUDGET) -> Any:
    return sim_factory(limits={"weight_per_window": budget, "weight_window_s": WINDOW_S})


async def saturate(client: Any, seconds: float, concurrency: int = 8, orders: bool = True) -> Any:
    ticker = await client.fetch_ticker(SYMBOL)
    ops = Ops(client, False, float(ticker["last"]))
    return await drive(ops, seconds, concurrency, with_orders=orders, seed=3, tag="t")


async def test_saturating_load_stays_inside_the_budget_with_no_429(
    sim_factory: Any, open_guarded: Any
) -> None:
    sim = limited_sim(sim_factory)
    async with open_guarded(sim, limits={"refresh_s": WINDOW_S}) as (client, rec):
        start = time.time()
        with WindowSampler(sim) as sampler:
            stats = await saturate(client, 2 * WINDOW_S + 0.5)
        windows = sampler.full_windows(start, 2 * WINDOW_S + 0.5, WINDOW_S)
    counters = sim.state()["counters"]
    assert counters["http_429"] == 0 and counters["http_418"] == 0
    assert stats.errors == {}, stats.errors
    assert len(windows) >= 1
    assert all(peak <= BUDGET for peak in windows.values()), windows
    # the limiter holds requests back, it does not starve them: windows are well used
    assert sum(windows.values()) >= 0.5 * BUDGET * len(windows), windows
    # the load's reads and orders are held at the ordinary ceiling (the cap less the
    # cancels' reserve), its cancels at the cap
    waits = rec.of("RATE_WAIT_RESERVE") + rec.of("RATE_WAIT_BUDGET")
    assert waits, rec.codes()
    assert "weight budget" in waits[0].sentence and "per 2s used" in waits[0].sentence
    # the rules came from the exchange, and were re-read once per period
    loaded = rec.of("RATE_RULES_LOADED")
    assert any("weight limit 200 per 2s read from the exchange" in d.sentence for d in loaded)
    rereads = [c for c in rec.calls if c.path == "/fapi/v1/exchangeInfo"]
    assert 2 <= len(rereads) <= 5


async def test_usage_spent_by_another_client_on_the_ip_is_taken_from_the_headers(
    sim_factory: Any, open_guarded: Any
) -> None:
    """A dashboard (plain HTTP, same IP) spends most of the window: perpbot must not 429."""
    sim = limited_sim(sim_factory)
    async with open_guarded(sim, limits={"refresh_s": 60}) as (client, _):
        await asyncio.sleep(WINDOW_S - time.time() % WINDOW_S + 0.05)  # a fresh window
        depth = f"{sim.base_url}/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
        for _ in range(7):  # 7 x depth(limit=1000) = 140 weight the client never saw
            with urllib.request.urlopen(depth):
                pass
        await client.fetch_ticker(SYMBOL)
        snapshot = client.pipeline.layer("ratelimit").snapshot()
        stats = await saturate(client, WINDOW_S, concurrency=4, orders=False)
    counters = sim.state()["counters"]
    assert snapshot["weight_used"] >= 141  # the exchange's count, not just our own 1
    assert snapshot["weight_limit"] == 190 and snapshot["weight_nominal"] == 200
    assert counters["http_429"] == 0 and counters["http_418"] == 0
    assert stats.ok > 0 and stats.errors == {}


async def test_a_public_market_data_client_draws_on_the_same_budget(
    sim_factory: Any, open_guarded: Any
) -> None:
    """An index source or dashboard without a key shares the host's (IP's) weight."""
    sim = sim_factory(limits={"weight_per_window": 2400, "weight_window_s": 10})
    async with (
        open_guarded(sim, limits={"refresh_s": 60}) as (trader, _),
        open_guarded(sim, public=True, limits={"refresh_s": 60}) as (index, _),
    ):
        for _ in range(5):
            await index.fetch_order_book(SYMBOL, 1000)  # weight 20 each
        at_exchange = sim.server.engine.limits.ips["127.0.0.1"].weight.used
        shared = trader.pipeline.layer("ratelimit").snapshot()
        seen_by_index = index.pipeline.layer("ratelimit").snapshot()
    assert index.setup.credentials.key_id == "anonymous"
    # one budget: what the exchange counted for both clients is inside the shared count
    assert shared["weight_used"] == seen_by_index["weight_used"] >= at_exchange
    assert at_exchange >= 100 or shared["weight_used"] < 100  # (unless the window turned)
    assert shared["store"].startswith("sqlite ")


def test_status_rate_section_is_json_serialisable(sim_factory: Any, open_guarded: Any) -> None:
    sim = limited_sim(sim_factory)

    async def go() -> dict[str, Any]:
        async with open_guarded(sim, limits={"store": "memory"}) as (client, _):
            await client.fetch_ticker(SYMBOL)
            return client.pipeline.layer("ratelimit").snapshot()

    snap = asyncio.run(go())
    text = json.dumps(snap)
    assert '"weight_nominal": 200' in text and '"source": "exchange"' in text
    assert set(snap["orders"]) == {"10s", "1m"}
