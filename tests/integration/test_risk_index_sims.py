"""The index basket over real HTTP: three simulator venues, each its own GuardedClient, with
independent faults (a frozen feed, a 10 % jump, two of three stale)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from perpbot.app.connect import connect
from perpbot.config import ExchangeSection, IndexSection, StrategyFile
from perpbot.events import Decision, EventBus, ExchangeCall
from perpbot.risk.index import IndexBasket, IndexSource, client_fetch
from perpbot.risk.state import RiskState

SYM = "BTC/USDT:USDT"
CALM = {"volatility": 0.00002, "jump_rate": 0.0, "tick_ms": 100}


class Venues:
    def __init__(self, sims: list[Any], cfg: IndexSection) -> None:
        self.sims = sims
        self.bus = EventBus()
        self.events: list[Any] = []
        self.bus.subscribe(self.events.append)
        config = StrategyFile.model_validate(
            {"strategy": {"name": "t", "file": "t.py", "symbols": [SYM]}, "index": cfg.model_dump()}
        )
        self.config = config
        self.state = RiskState(config)
        self.cfg = cfg
        self.conns: list[Any] = []

    async def __aenter__(self) -> IndexBasket:
        sources = []
        for name, h in zip("abc", self.sims, strict=True):
            conn = await connect(
                ExchangeSection(id="sim", url=h.base_url),
                command="index",
                run_id="t-index",
                bus=self.bus,
                config=self.config,
                public_only=True,
            )
            self.conns.append(conn)
            # the source's reads pass the same rate limiter as the bot's (shared budget)
            assert conn.client.pipeline.layer("ratelimit") is not None
            sources.append(IndexSource(name, SYM, client_fetch(conn.client, SYM, "index"), 2.0))
        return IndexBasket(self.cfg, sources, self.state, self.bus)

    async def __aexit__(self, *exc: object) -> None:
        for c in self.conns:
            await c.close()

    def decisions(self, code: str) -> list[Decision]:
        return [e for e in self.events if isinstance(e, Decision) and e.code == code]


@pytest.fixture
def three(sim_factory: Any) -> list[Any]:
    return [sim_factory(seed=7, market=CALM) for _ in range(3)]


async def poll_until(basket: IndexBasket, cond: Any, timeout: float = 6.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        await basket.poll_once()
        if cond():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met; last reading: {basket.state.index[SYM]}")
        await asyncio.sleep(0.2)


async def test_a_frozen_source_is_left_out_and_the_reference_barely_moves(
    three: list[Any],
) -> None:
    v = Venues(three, IndexSection(max_age_s=1.0, min_sources=2))
    async with v as basket:
        await basket.poll_once()
        before = v.state.index[SYM]
        assert before.healthy and before.good == 3
        three[2].set_faults({"freeze_prices": True})
        await poll_until(basket, lambda: bool(v.decisions("INDEX_SOURCE_STALE")))
        after = v.state.index[SYM]
    stale = v.decisions("INDEX_SOURCE_STALE")[0]
    assert stale.action == "alert" and stale.data["source"] == "c"
    assert "index source c for BTC/USDT:USDT is stale" in stale.sentence
    assert "max_age_s 1" in stale.sentence
    assert after.healthy and after.good == 2
    assert abs(after.price - before.price) / before.price < 0.001
    # every source read went through its own guarded pipeline and was published
    paths = {e.path for e in v.events if isinstance(e, ExchangeCall)}
    assert "/fapi/v1/premiumIndex" in paths


async def test_a_source_10_pct_off_is_an_outlier(three: list[Any]) -> None:
    v = Venues(three, IndexSection(max_age_s=5.0, min_sources=2))
    async with v as basket:
        await basket.poll_once()
        before = v.state.index[SYM].price
        three[1].set_faults({"price_jump": {"BTCUSDT": 10.0}})
        await poll_until(basket, lambda: bool(v.decisions("INDEX_SOURCE_OUTLIER")))
        reading = v.state.index[SYM]
    outlier = v.decisions("INDEX_SOURCE_OUTLIER")[0]
    assert outlier.data["source"] == "b" and "+10.0" in outlier.sentence
    assert reading.healthy and before is not None and reading.price is not None
    assert abs(reading.price - before) / before < 0.001
    assert three[1].state()["markets"]  # the venue itself did jump
    assert not v.decisions("INDEX_UNHEALTHY")


async def test_two_of_three_stale_makes_the_basket_unhealthy(three: list[Any]) -> None:
    v = Venues(three, IndexSection(max_age_s=1.0, min_sources=2))
    async with v as basket:
        await basket.poll_once()
        three[0].set_faults({"freeze_prices": True})
        three[1].set_faults({"freeze_prices": True})
        await poll_until(basket, lambda: bool(v.decisions("INDEX_UNHEALTHY")))
        three[0].set_faults({})
        three[1].set_faults({})
        await poll_until(basket, lambda: bool(v.decisions("INDEX_RECOVERED")))
    bad = v.decisions("INDEX_UNHEALTHY")[0]
    assert "1 good source of 3, fewer than [index] min_sources 2" in bad.sentence
    assert "the bot is reduce-only on BTC/USDT:USDT until it recovers" in bad.sentence
    assert bad.data["trip"] is False
    assert v.state.reduce_only_reason(SYM) is None  # released on recovery
