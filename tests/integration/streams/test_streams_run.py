"""A paper bot on streams against the simulator: ccxt.pro over real WebSockets on loopback.

The simulator's own record (its REST ``userTrades`` for the bot's account) is the truth
each test compares the engine's fills with: none missed, none counted twice.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from perpbot.audit.reader import iter_records
from perpbot.engine.events import FillEvent
from perpbot.paths import logs_dir
from tests.integration.risk_support.bot import BTC, write_toml
from tests.integration.streams.support import (
    bot_toml,
    control,
    feed_of,
    fill_events,
    sim_trade_ids,
    started,
    ws_state,
)

pytestmark = pytest.mark.timeout(90)


async def test_fills_reach_the_engine_from_the_stream(sim_factory: Any, tmp_path: Path) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle))
    try:
        feed = feed_of(bot)
        for _ in range(3):
            await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        truth = await sim_trade_ids(handle, bot)
        await bot.until(lambda: len(fill_events(bot)) >= len(truth))
        events = fill_events(bot)
        assert sorted(e.fill.trade_id for e in events) == sorted(truth)
        assert {e.source for e in events} == {"stream"}  # no REST reconcile ran meanwhile
        assert feed.counters["reconciles"] == 1  # the start-up one only
        # positions and equity came from the stream too, and agree with REST
        state = bot.runner.state  # the position update is its own stream message
        await bot.until(lambda: BTC in state.positions)
        await bot.until(lambda: state.positions[BTC].amount == pytest.approx(0.006))
        book = await bot.do(lambda ctx: ctx.order_book(BTC, 5))
        assert book["bids"][0][0] < book["asks"][0][0]
    finally:
        await bot.stop()


async def test_a_forced_disconnect_is_backfilled_with_no_fill_missed_or_doubled(
    sim_factory: Any, tmp_path: Path
) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle, audit=True))
    try:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == 1)
        # the streams go down (1006, no close frame) and stay down while the bot trades
        control(handle, "/__sim/faults", {"streams": {"refuse_connections": True}})
        control(handle, "/__sim/ws/close", {"code": 1006, "scope": "all"})
        await bot.until(lambda: bot.decisions("STREAM_DISCONNECTED"))
        for _ in range(2):
            await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        control(handle, "/__sim/faults", {})
        await bot.until(lambda: bot.decisions("STREAM_BACKFILL"), timeout=30)
        truth = await sim_trade_ids(handle, bot)
        await bot.until(lambda: len(fill_events(bot)) >= len(truth))
        ids = [e.fill.trade_id for e in fill_events(bot)]
        assert sorted(ids) == sorted(truth) and len(set(ids)) == len(ids)
        assert [f.trade_id for f in bot.runner.ledger.fills] == ids
        assert bot.decisions("STREAM_RECONNECTED")
        logged = {e["code"] for e in bot.journal()}
        assert {"STREAM_DISCONNECTED", "STREAM_BACKFILL"} <= logged
        # the stream carries fills again afterwards: the sell's fill arrives on the user
        # stream (ccxt.pro's cache of streamed trades holds it). Which source records it
        # first is a race on a loaded machine (a user route still coming back may have a
        # REST read in flight), so the fill is checked once in the engine, streamed or not.
        await bot.do(lambda ctx: ctx.market_order(BTC, "sell", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == len(truth) + 1)
        sell = fill_events(bot)[-1].fill.trade_id
        feed = feed_of(bot)
        await bot.until(lambda: sell in {str(t["id"]) for t in (feed.ex.myTrades or [])})
        ids = [e.fill.trade_id for e in fill_events(bot)]
        assert len(set(ids)) == len(ids)
    finally:
        await bot.stop()
    signed = {
        r["code"]: r
        for r in iter_records(logs_dir() / bot.runner.run_id)
        if r.get("kind") == "decision" and r.get("layer") == "streams"
    }
    assert {"STREAM_DISCONNECTED", "STREAM_BACKFILL", "STREAM_RECONNECTED"} <= set(signed)
    assert "filled the gap" in signed["STREAM_BACKFILL"]["sentence"]


async def test_a_stalled_market_stream_is_stale_and_reconnected(
    sim_factory: Any, tmp_path: Path
) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle, stream_stale_s=1.0))
    try:
        await bot.until(lambda: bot.runner.state.marks.get(BTC))
        control(handle, "/__sim/faults", {"streams": {"stall": True, "scope": "market"}})
        stale = await bot.until(lambda: bot.decisions("STREAM_STALE"), timeout=20)
        assert stale[0].data["stream"] == f"mark {BTC}"
        assert stale[0].data["silent_s"] < 2 * 1.0 + 0.5  # detected within 2x the cadence
        # its data is stale meanwhile: the context falls back to REST, not to old data
        assert bot.runner.feed is not None
        control(handle, "/__sim/faults", {})
        await bot.until(lambda: bot.decisions("STREAM_RECONNECTED"), timeout=20)

        def status_says_stale() -> Any:
            streams = bot.status()["snapshot"]["extras"].get("streams") or {}
            return [e for e in streams.get("events", []) if e["code"] == "STREAM_STALE"]

        (said,) = await bot.until(status_says_stale)
        assert "silent for" in said["sentence"]
        logged = [e for e in bot.journal() if e["code"] == "STREAM_STALE"]
        assert logged and logged[0]["layer"] == "streams"
    finally:
        await bot.stop()


async def test_listen_key_expiry_is_recovered(sim_factory: Any, tmp_path: Path) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle))
    try:
        control(handle, "/__sim/ws/expire_listen_keys", {})
        await bot.until(lambda: bot.decisions("STREAM_DISCONNECTED"))
        await bot.until(lambda: bot.decisions("STREAM_BACKFILL"), timeout=30)
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == 1)
        assert fill_events(bot)[0].source == "stream"  # the new listenKey's stream carries it
        assert await sim_trade_ids(handle, bot) == [fill_events(bot)[0].fill.trade_id]
    finally:
        await bot.stop()


async def test_streams_false_keeps_polling(sim_factory: Any, tmp_path: Path) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle, streams=False))
    try:
        assert bot.runner.feed is None
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == 1)
        assert fill_events(bot)[0].source == "rest"
    finally:
        await bot.stop()


async def test_engine_events_iterate(sim_factory: Any, tmp_path: Path) -> None:
    """The async-iterator form of the engine's event source sees the same fills."""
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle))
    try:
        seen: list[Any] = []

        async def consume() -> None:
            async for event in bot.runner.engine_events.iterate():
                seen.append(event)

        task = asyncio.create_task(consume())
        await asyncio.sleep(0)
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await bot.until(lambda: any(isinstance(e, FillEvent) for e in seen))
        task.cancel()
    finally:
        await bot.stop()


async def test_a_stalled_mark_stream_trips_the_stale_price_kill_like_rest(
    sim_factory: Any, tmp_path: Path
) -> None:
    """[kill] max_price_age_s judges the streamed mark's exchange time like REST's."""
    handle = sim_factory()
    toml = write_toml(
        tmp_path,
        handle.base_url,
        exchange={"stream_stale_s": 30.0},  # no reconnect: the mark just stops
        kill={"deadman": False, "max_price_age_s": 1.5, "trip_level": "halt"},
    )
    bot = await started(toml)
    try:
        await bot.until(lambda: bot.runner.state.marks.get(BTC))
        assert not bot.decisions("KILL_STALE_PRICE")  # fresh while the stream flows
        control(handle, "/__sim/faults", {"streams": {"stall": True, "scope": "market"}})
        (trip,) = await bot.until(lambda: bot.decisions("KILL_STALE_PRICE"), timeout=20)
        assert BTC in trip.sentence and "max_price_age_s = 1.5" in trip.sentence
    finally:
        control(handle, "/__sim/faults", {})
        await bot.stop()


async def test_a_24h_rotation_is_a_loss_like_any_other(sim_factory: Any, tmp_path: Path) -> None:
    """The server closes every connection with 1001 (its 24 h limit, compressed): the bot
    reconnects, backfills, and fills keep reaching it from the stream."""
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle))
    try:
        # the market streams are up too (the start waits for the user stream only; on a
        # loaded machine the mark and book connections can still be opening)
        feed = feed_of(bot)
        market = [h for h in feed.health.values() if not h.private]
        await bot.until(lambda: all(h.messages for h in market))
        old = max(c["id"] for c in ws_state(handle)["connections"])
        control(handle, "/__sim/ws/rotate", {"scope": "all"})
        await bot.until(lambda: bot.decisions("STREAM_BACKFILL"), timeout=30)

        def all_new() -> bool:  # the simulator's truth: every connection it holds is new
            conns = ws_state(handle)["connections"]
            return bool(conns) and all(c["id"] > old for c in conns)

        await bot.until(all_new)
        # the market streams carry data again on the new connections (a loop waiting on
        # its watch when the close came says it was lost; one between two watches just
        # dials again on its next watch, with nothing to say)
        seen = {h.name: h.messages for h in market}
        await bot.until(lambda: all(h.messages > seen[h.name] for h in market))
        assert all_new()
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == 1)
        assert fill_events(bot)[0].source == "stream"
        assert await sim_trade_ids(handle, bot) == [fill_events(bot)[0].fill.trade_id]
    finally:
        await bot.stop()


async def test_a_user_stream_back_on_a_quiet_account_is_up_before_its_next_event(
    sim_factory: Any, tmp_path: Path
) -> None:
    """The user stream speaks only when something happens. After a loss it is back once
    its new connection is open and REST has filled the gap, not at its next event: on a
    quiet account that can be hours, and meanwhile ``perpbot status`` said "down" and
    every ``ctx.refresh()`` read REST."""
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle))
    try:
        feed = feed_of(bot)
        old = max(c["id"] for c in ws_state(handle)["connections"] if c["private"])
        control(handle, "/__sim/ws/rotate", {"scope": "user"})
        await bot.until(lambda: bot.decisions("STREAM_DISCONNECTED"))
        await bot.until(lambda: feed.user_stream_up, timeout=30)
        users = {h.name for h in feed.health.values() if h.private}
        back = {d.data["stream"] for d in bot.decisions("STREAM_RECONNECTED")}
        assert users <= back
        assert all(h.messages == 0 for h in feed.health.values() if h.private)  # no event yet
        private = [c for c in ws_state(handle)["connections"] if c["private"]]
        assert private and all(c["id"] > old for c in private)  # the simulator's truth

        def status_says() -> dict[str, str]:  # (the status is written at each tick)
            streams = bot.status()["snapshot"]["extras"]["streams"]["streams"]
            return {s["name"]: s["state"] for s in streams if s["name"] in users}

        await bot.until(lambda: status_says() == dict.fromkeys(users, "up"))
        reconciles = feed.counters["reconciles"]
        await bot.do(lambda ctx: ctx.refresh())
        assert feed.counters["reconciles"] == reconciles  # the stream's view, no REST read
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == 1)
        assert fill_events(bot)[0].source == "stream"  # and it carries the next fill
    finally:
        await bot.stop()


async def test_position_updates_read_in_one_go_leave_the_newest_position(
    sim_factory: Any, tmp_path: Path
) -> None:
    """The simulator holds the user stream's events and releases them in bursts: ccxt.pro
    resolves watch_positions once for several ACCOUNT_UPDATEs read in one go and forgets
    the later ones; the engine's position must still end at the newest (it stayed one fill
    behind before)."""
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle))
    try:
        control(handle, "/__sim/faults", {"streams": {"burst_ms": 800}})
        for _ in range(3):
            await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        state = bot.runner.state
        await bot.until(lambda: BTC in state.positions)
        await bot.until(lambda: state.positions[BTC].amount == pytest.approx(0.006))
        assert bot.runner.feed is not None
        assert bot.runner.feed.counters["reconciles"] == 1  # the stream's doing, not REST's
    finally:
        await bot.stop()
