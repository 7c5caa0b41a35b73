"""What reaches ccxt.pro's caches while no stream loop waits is applied all the same.

ccxt.pro resolves a watch only while a loop waits on it: a fill that lands between two
watches stays in its cache until the next update wakes the loop (on a quiet account, maybe
never). Here the trades loop is stopped outright, the harshest form of that gap: the fill
of a market order must still be booked from the stream (the feed's catch-up), once, with
the simulator's own trades as the truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.risk_support.bot import BTC
from tests.integration.streams.support import bot_toml, feed_of, fill_events, sim_trade_ids, started


async def test_a_fill_no_loop_waited_for_is_booked_from_the_stream_cache(
    sim_factory: Any, tmp_path: Path
) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle, reconcile_interval=600))
    try:
        feed = feed_of(bot)
        (loop,) = [t for t in feed._tasks if t.get_name() == "stream user trades"]
        loop.cancel()  # nobody waits on watch_my_trades from here on
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        truth = await sim_trade_ids(handle, bot)
        await bot.until(lambda: len(fill_events(bot)) >= len(truth), timeout=10)
        events = fill_events(bot)
        assert sorted(e.fill.trade_id for e in events) == sorted(truth)
        assert {e.source for e in events} == {"stream"}  # not a REST reconcile
        assert feed.counters["reconciles"] == 1  # the start-up one only
    finally:
        await bot.stop()
