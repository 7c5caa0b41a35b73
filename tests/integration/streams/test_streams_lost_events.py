"""Events the user stream loses, doubles or delivers out of order (the simulator's
``drop_rate``, ``duplicate_rate`` and ``reorder_rate`` faults): the engine still sees each
of the simulator's fills once. The simulator's trade list is the truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.kill_strategies.support import quiet_market
from tests.integration.risk_support.bot import BTC
from tests.integration.streams.support import (
    bot_toml,
    control,
    feed_of,
    fill_events,
    sim_trade_ids,
    started,
)

pytestmark = pytest.mark.timeout(90)
# reconcile_interval = 600: no periodic REST reconcile within a test, so only the stream
# or a backfill can bring a fill


async def test_a_lost_fill_older_than_a_streamed_one_is_still_backfilled(
    sim_factory: Any, tmp_path: Path
) -> None:
    """The stream drops every event of the first fill and delivers the second: the REST
    reconcile that follows must read fills from where REST last listed them, not from the
    newest fill recorded (the streamed one, newer than the lost one). The first is a
    resting bid the market falls through: no answer told the run of its fill (a filled
    answer would have the run settle its position over REST before its next order)."""
    handle = sim_factory(market=quiet_market())
    bot = await started(bot_toml(tmp_path, handle, reconcile_interval=600))
    try:
        feed = feed_of(bot)
        control(handle, "/__sim/faults", {"streams": {"drop_rate": 1.0, "scope": "user"}})
        bid = await bot.do(
            lambda ctx: ctx.limit_order(
                BTC, "buy", 0.002, ctx.round_price(BTC, ctx.mark(BTC) * 0.99)
            )
        )
        handle.jump("BTCUSDT", -1.5)  # the crowd's asks fall through the bid: it fills
        (lost,) = await sim_trade_ids(handle, bot)
        control(handle, "/__sim/faults", {})
        assert bid.status == "open"
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await bot.until(lambda: fill_events(bot))
        assert [e.source for e in fill_events(bot)] == ["stream"]  # the second, streamed
        assert lost not in {e.fill.trade_id for e in fill_events(bot)}
        await feed.reconcile("test")  # the safety net (periodic, or after a loss)
        truth = await sim_trade_ids(handle, bot)
        ids = [e.fill.trade_id for e in fill_events(bot)]
        assert sorted(ids) == sorted(truth) and len(set(ids)) == len(ids) == 2
        assert [e.source for e in fill_events(bot) if e.fill.trade_id == lost] == ["rest"]
    finally:
        control(handle, "/__sim/faults", {})
        await bot.stop()


async def test_doubled_and_reordered_events_count_each_fill_once(
    sim_factory: Any, tmp_path: Path
) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle, reconcile_interval=600))
    try:
        control(
            handle,
            "/__sim/faults",
            {"streams": {"duplicate_rate": 1.0, "reorder_rate": 0.5, "scope": "user"}},
        )
        for side in ("buy", "buy", "sell", "buy", "sell"):
            await bot.do(lambda ctx, side=side: ctx.market_order(BTC, side, 0.002))
        control(handle, "/__sim/faults", {})
        truth = await sim_trade_ids(handle, bot)
        await bot.until(lambda: len(fill_events(bot)) >= len(truth))
        await bot.runner.feed.reconcile("test")
        ids = [e.fill.trade_id for e in fill_events(bot)]
        assert sorted(ids) == sorted(truth) and len(set(ids)) == len(ids) == 5
        assert [f.trade_id for f in bot.runner.ledger.fills] == ids
    finally:
        control(handle, "/__sim/faults", {})
        await bot.stop()
