"""The random walk is exogenous: a seed's walk is the same whatever a user trades.

Benches compare exit policies on the same seed (common random numbers) and subtract the
walk's drift over an exit as a control variate (bench/exit.py); both need the walk's
draws to be independent of the orders, and ``walk_log`` to be the walk alone (no impact).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from .conftest import BTC, make_async, quiet_config, quiet_market


def _walk(sim: Any) -> tuple[float, float, float]:
    mkt = sim.server.engine.markets["BTCUSDT"]
    return sim._call(lambda: (mkt.walk_log, mkt.mid, mkt.start_price))


@pytest.mark.asyncio
async def test_the_walk_is_the_same_with_and_without_orders(sim_factory) -> None:
    """Two simulators on one seed (walk, jumps and synthetic takers on): one is swept by
    market orders, the other is left alone; step by step their walks agree exactly, while
    the swept one's mid carries the orders' lasting impact."""
    market = quiet_market(volatility=0.0005, jump_rate=0.05, taker_rate=2.0)
    quiet, traded = (sim_factory(quiet_config(market=market)) for _ in range(2))
    ex = make_async(traded, *traded.create_account(balance=10_000_000))
    try:
        for _ in range(10):
            await ex.create_order(BTC, "market", "sell", 5)
            for sim in (quiet, traded):
                sim.advance(1_000)
            (w_quiet, mid_quiet, _), (w_traded, mid_traded, _) = _walk(quiet), _walk(traded)
            assert w_traded == w_quiet
        assert w_quiet != 0.0
        # the orders moved the traded mid for good (permanent impact), not the walk
        assert mid_traded < mid_quiet - 1.0
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_with_no_trades_the_mid_is_the_start_moved_by_the_walk(sim_factory) -> None:
    sim = sim_factory(quiet_config(market=quiet_market(volatility=0.0005, jump_rate=0.05)))
    sim.advance(120_000)
    walk, mid, start = _walk(sim)
    assert walk != 0.0
    assert mid == pytest.approx(start * math.exp(walk), rel=1e-9)
