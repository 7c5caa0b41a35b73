"""A REST read of fills never moves its window past a fill the run cannot name yet.

The run's REST read of its trades starts a little before the newest trade it listed
(``REST_OVERLAP_MS``). A read made while one of the run's placements waits for its answer
(the streams' safety-net reconcile, a backfill) can list that order's trade before the run
knows the order, and with it a later trade (another client's on the same account). Were the
window to move to the later trade, the run's own fill would fall out of every later read
once its answer came. The simulator's ``delayed_response`` fault fills the order and holds
its answer; the simulator's own trade list is the truth.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

import pytest

from perpbot.engine.reconcile import REST_OVERLAP_MS
from tests.integration.hedge_support import plain_ccxt
from tests.integration.risk_support.bot import BTC, BTC_ID, write_toml
from tests.integration.streams.support import fill_events, started

pytestmark = pytest.mark.timeout(60)
LOT = 0.004
ANSWER_LATE_MS = REST_OVERLAP_MS + 2_500  # the later trade comes past the overlap first


def trades_of(sim: Any, order: dict[str, Any]) -> list[dict[str, Any]]:
    """The simulator's own record of ``order``'s trades (the truth)."""
    return [t for t in sim.state()["trades"] if t["orderId"] == order["orderId"]]


async def test_a_fill_listed_before_its_placement_was_answered_is_booked_once_it_is(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    secret = os.environ["PERPBOT_SIM_API_SECRET"]  # (the fixture put it there)
    toml = write_toml(
        tmp_path,
        sim.base_url,
        exchange={"streams": False},  # the reads below are the run's only view of its fills
        kill={"deadman": False},
        risk={"symbols": {BTC: {"max_position_notional": 1e6}}, "accept_no_limits": True},
    )
    bot = await started(toml)
    reconciler = bot.runner.reconciler
    assert reconciler is not None
    other = plain_ccxt(sim, key, secret)  # another client on the same account
    try:
        sim.set_faults({"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": ANSWER_LATE_MS}})
        placing = asyncio.create_task(bot.do(lambda ctx: ctx.market_order(BTC, "buy", LOT)))
        await bot.until(lambda: sim.state()["counters"]["delayed_responses"] == 1)
        [ours] = [o for o in sim.state()["orders"] if o["status"] == "FILLED"]
        assert ours["symbol"] == BTC_ID
        await reconciler.reconcile(market=False)  # lists our trade: no order to name it yet
        # past the overlap, another client on the account trades
        filled_at = max(t["time"] for t in trades_of(sim, ours)) / 1000.0
        await asyncio.sleep(max(0.0, filled_at + REST_OVERLAP_MS / 1000.0 + 0.3 - time.time()))
        other.create_order("BTC/USDT:USDT", "market", "buy", LOT)
        await reconciler.reconcile(market=False)  # lists both trades, still unnamed
        assert not placing.done()  # the answer is still held back
        answer = await placing
        assert str(answer["id"]) == str(ours["orderId"])
        await reconciler.reconcile(market=False)
        ours_traded = [str(t["id"]) for t in trades_of(sim, ours)]
        assert ours_traded
        assert [e.fill.trade_id for e in fill_events(bot)] == ours_traded  # booked, once
        book = bot.runner.ledger.book[BTC]
        assert book.amount == pytest.approx(LOT)
    finally:
        await bot.stop()
