"""A silent stall of the user data stream (connection open, no events: the simulator's
``stall`` fault on the user scope) is found from the order book's evidence, not by the slow
REST reconcile: the market moves through one of the run's resting orders, the book shows it
gone, the user stream says nothing; within the grace the run reconnects the user stream and
REST backfills the fill. The simulator's own trade list is the truth.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from perpbot.cli.status import bot_view
from perpbot.cli.status_view import streams_lines
from perpbot.streams.evidence import OWED_GRACE_S
from tests.integration.risk_support.bot import BTC, BTC_ID, Bot, quiet
from tests.integration.streams.support import (
    bot_toml,
    control,
    feed_of,
    fill_events,
    sim_trade_ids,
    started,
)

pytestmark = pytest.mark.timeout(90)
# reconcile_interval = 600: no periodic REST reconcile within a test, so only the stream,
# a backfill or the book's evidence can bring a fill


async def rest_at_best_bid(bot: Bot) -> str:
    """A buy resting at the best bid; waits until the book shows it (the run knows it)."""
    book = await bot.do(lambda ctx: ctx.order_book(BTC, 5))
    price = book["bids"][0][0]
    order = await bot.do(lambda ctx: ctx.limit_order(BTC, "buy", 0.002, price))
    assert bot.runner.feed is not None
    seen = time.time()
    await bot.until(lambda: bot.runner.feed._book_seen.get(BTC, 0.0) > seen)
    return str(order.client_order_id)


async def test_a_stalled_user_stream_is_found_by_the_books_evidence(
    sim_factory: Any, tmp_path: Path
) -> None:
    handle = sim_factory(market=quiet())
    bot = await started(bot_toml(tmp_path, handle, reconcile_interval=600))
    try:
        feed = feed_of(bot)
        cid = await rest_at_best_bid(bot)
        control(handle, "/__sim/faults", {"streams": {"stall": True, "scope": "user"}})
        moved = time.monotonic()
        handle.jump(BTC_ID, -0.5)  # the market trades through the resting buy
        await bot.until(lambda: fill_events(bot), timeout=20)
        reached = time.monotonic() - moved
        truth = await sim_trade_ids(handle, bot)
        assert truth, "the simulator filled the resting buy"
        await bot.until(lambda: len(fill_events(bot)) >= len(truth))
        ids = [e.fill.trade_id for e in fill_events(bot)]
        assert sorted(ids) == sorted(truth) and len(set(ids)) == len(ids)
        assert {e.source for e in fill_events(bot)} == {"rest"}  # the stream held it back
        # found within 2x the grace of the book showing it (plus the book's 100 ms and the
        # reconnect + backfill on a loaded machine), not after reconcile_interval (600 s)
        assert reached < 2 * OWED_GRACE_S + 3.0, reached
        (silent,) = bot.decisions("STREAM_USER_SILENT")
        assert silent.data["orders"] == [cid]
        assert OWED_GRACE_S <= silent.data["owed_s"] < 2 * OWED_GRACE_S
        assert "no longer rests" in silent.sentence
        assert bot.decisions("STREAM_BACKFILL")
        assert feed.counters["user_silent"] == 1 and feed.counters["reconciles"] == 2
        logged = [e for e in bot.journal() if e["code"] == "STREAM_USER_SILENT"]
        assert logged and logged[0]["layer"] == "streams"
        await bot.until(  # `perpbot status` (its file is written after each tick)
            lambda: any(
                e["code"] == "STREAM_USER_SILENT"
                for e in bot.status()["snapshot"]["extras"]["streams"]["events"]
            )
        )
        # the run closed the stream for its silence: connected again and backfilled, it
        # still counts as down until it speaks (the stall goes on), so a refresh reads REST
        assert not feed.user_stream_up
        await bot.do(lambda ctx: ctx.refresh())
        assert feed.counters["reconciles"] == 3
        # the stall ends: the stream carries fills again
        control(handle, "/__sim/faults", {})
        await bot.do(lambda ctx: ctx.market_order(BTC, "sell", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == len(truth) + 1)
        assert fill_events(bot)[-1].source == "stream"
        # `perpbot status` draws it on its streams row (all up again, the stall counted)
        panel = await bot.until(lambda: status_streams(bot, "6 up"))
        assert "user silent 1" in panel[0] and panel[1].startswith("last: STREAM_")
    finally:
        control(handle, "/__sim/faults", {})
        await bot.stop()


async def test_no_stall_is_suspected_when_the_user_stream_speaks(
    sim_factory: Any, tmp_path: Path
) -> None:
    """The same move with a healthy user stream: the fill comes from the stream and the
    book's evidence accuses nothing (no reconnect, no extra reconcile)."""
    handle = sim_factory(market=quiet())
    bot = await started(bot_toml(tmp_path, handle, reconcile_interval=600))
    try:
        feed = feed_of(bot)
        await rest_at_best_bid(bot)
        handle.jump(BTC_ID, -0.5)
        await bot.until(lambda: fill_events(bot), timeout=20)
        assert fill_events(bot)[0].source == "stream"
        await bot.until(lambda: not feed.account.open_orders(BTC))
        await _quiet_for(bot, 2 * OWED_GRACE_S + 0.5)
        assert not bot.decisions("STREAM_USER_SILENT")
        assert feed.counters["reconciles"] == 1 and feed.counters["disconnects"] == 0
        assert [e.fill.trade_id for e in fill_events(bot)] == await sim_trade_ids(handle, bot)
    finally:
        await bot.stop()


def status_streams(bot: Bot, needle: str) -> list[str] | None:
    """The streams rows of `perpbot status` for this bot once they say ``needle``."""
    lines = [text for text, _ in streams_lines(bot_view(bot.status(), time.time(), None))]
    return lines if lines and needle in lines[0] else None


async def _quiet_for(bot: Bot, seconds: float) -> None:
    """Let the watchdog run for ``seconds`` (it judges every 0.2 s)."""
    deadline = time.monotonic() + seconds
    await bot.until(lambda: time.monotonic() >= deadline, timeout=seconds + 5)
