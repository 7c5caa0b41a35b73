"""An index basket that polls the trading key's own host: one weight budget for both.

Index sources are public market-data clients; on the trading venue's host they draw on the
same per-IP weight as the trading key (docs/risk.md, docs/ratelimit.md "Shared"). Nothing
caps the basket's share of it: what is guaranteed is the reserve (`[limits] reserve_pct`),
which ordinary requests (the basket's among them) never use, so cancels and the kill
switch's requests always find room.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from bench.support.loadtest import WindowSampler
from perpbot.engine.context import Context
from perpbot.kill.sentinel import new_entry, write_sentinel
from tests.integration.kill_strategies.support import open_orders_of
from tests.integration.risk_support.bot import BTC, Bot, quiet, write_toml

WINDOW_S = 2
WEIGHT = 60  # per window: the basket alone asks for several times that
DEPTH = "/fapi/v1/depth"


def post(ctx: Context, n: int) -> Any:
    price = round(ctx.mid(BTC) * (0.99 - n / 1000), 1)
    return ctx.post_only_order(BTC, "buy", 0.002, price)


async def test_a_greedy_index_basket_on_the_trading_host_leaves_the_reserve_to_cancels_and_the_kill(
    sim_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hummingbot #6062: a price oracle polling the trading venue spent the trading key's
    weight budget, and the bot's orders and cancels failed. Here three basket sources poll
    the trading simulator's order book every 50 ms (several times the window's weight):
    the basket is held at the ordinary ceiling (the cap less the reserve), the bot's orders
    still go out (held for room, not refused), its cancel and the kill switch's listings
    and cancels go out on the reserve (the kill's cancels never wait for the budget), and
    the simulator answers no 429 and no 418. Nothing caps the basket's share below the
    ordinary ceiling: the bot's own orders compete with it for that part."""
    sim = sim_factory(
        market=quiet(), limits={"weight_per_window": WEIGHT, "weight_window_s": WINDOW_S}
    )
    key, secret = sim.create_account()
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    sources = [
        {"name": n, "exchange": "sim", "url": sim.base_url, "symbol": BTC, "price": "mid"}
        for n in "abc"
    ]
    toml = write_toml(
        tmp_path,
        sim.base_url,
        index={"min_sources": 1, "max_age_s": 30, "poll_interval_s": 0.05, "sources": sources},
        exchange={"streams": False},
        kill={"deadman": False},
        risk={"accept_no_limits": True},
        limits={"refresh_s": 60},
    )
    stats = sim.server.stats
    with WindowSampler(sim) as sampler:
        async with Bot(toml) as bot:
            await bot.until(lambda: stats.per_path[DEPTH] >= 30)  # the basket is polling
            placed = [await bot.do(lambda ctx, n=n: post(ctx, n), timeout=15) for n in range(3)]
            assert len(open_orders_of(sim.state(), key)) == 3
            cancel_at = time.time()
            await bot.do(lambda ctx: ctx.cancel_order(placed[0]["id"], BTC), timeout=15)
            assert len(open_orders_of(sim.state(), key)) == 2
            killed = time.monotonic()
            write_sentinel(new_entry("cancel", "oracle drill"))
            await bot.until(lambda: not open_orders_of(sim.state(), key), timeout=10)
            kill_s = time.monotonic() - killed
    counters = sim.state()["counters"]
    assert counters["http_429"] == 0 and counters["http_418"] == 0, counters
    # the basket was held at the ordinary ceiling: it wanted far more than the window
    held = [d for d in bot.events if getattr(d, "code", "") == "RATE_WAIT_RESERVE"]
    assert any(DEPTH in d.data["request"] for d in held), [d.data for d in held]
    assert bot.decisions("KILL_DONE")
    cancels = [
        c for c in bot.events if getattr(c, "http_method", None) == "DELETE" and c.status == 200
    ]
    assert len(cancels) >= 2
    # by the simulator's count, until the cancels the basket and the bot's ordinary requests
    # together stayed at the ordinary ceiling (60 less the 5 % margin less the 10 % reserve
    # = 51) in every window: the rest was there for the cancels and the kill; with them,
    # at the whole cap (57)
    before = [p for w, p in sampler.peak.items() if (w / 1000 + WINDOW_S) <= cancel_at]
    assert before and all(p <= 51 for p in before), sampler.peak
    assert max(before) >= 45  # (the basket did fill the ordinary part)
    assert all(p <= 57 for p in sampler.peak.values()), sampler.peak
    assert kill_s < 1.0, kill_s  # the kill's cancels did not wait for the next window
