"""Stream connections are rotated ahead of the exchange's 24 h disconnect without a gap.

The simulator's 24 h limit is compressed (``[ws] max_connection_s``, simulator clock) and
the bot rotates ahead of it (``[exchange] stream_rotate_s``) while it trades: every fill
must come from the stream (none from a REST backfill: there was no gap), each once, and
the simulator must never have had to close a connection itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perpbot.streams import feed as feed_module
from tests.integration.risk_support.bot import BTC
from tests.integration.streams.support import (
    bot_toml,
    control,
    feed_of,
    fill_events,
    sim_trade_ids,
    started,
    ws_counters,
)

pytestmark = pytest.mark.timeout(90)

ROTATE_S, LIMIT_S = 2.0, 8.0  # (the old user connection lives ROTATE_S + its dial + 2 s)


async def test_connections_are_rotated_ahead_of_the_limit_with_no_gap(
    sim_factory: Any, tmp_path: Path
) -> None:
    handle = sim_factory(ws={"max_connection_s": LIMIT_S})
    toml = bot_toml(tmp_path, handle, reconcile_interval=600, stream_rotate_s=ROTATE_S)
    bot = await started(toml)
    try:
        feed = feed_of(bot)

        def user_rotations() -> list[Any]:
            return [d for d in bot.decisions("STREAM_ROTATED") if d.data["private"]]

        side = "buy"
        while len(user_rotations()) < 3:  # trade through three rotations of the user stream
            await bot.do(lambda ctx, side=side: ctx.market_order(BTC, side, 0.002))
            side = "sell" if side == "buy" else "buy"
        truth = await sim_trade_ids(handle, bot)
        await bot.until(lambda: len(fill_events(bot)) >= len(truth))
        events = fill_events(bot)
        ids = [e.fill.trade_id for e in events]
        assert len(truth) >= 6
        assert sorted(ids) == sorted(truth) and len(set(ids)) == len(ids)
        assert {e.source for e in events} == {"stream"}  # no gap: nothing needed REST
        for code in ("STREAM_DISCONNECTED", "STREAM_BACKFILL", "STREAM_ROTATE_FAILED"):
            assert not bot.decisions(code), [d.sentence for d in bot.decisions(code)]
        assert feed.counters["reconciles"] == 1  # the start-up one only
        assert any(not d.data["private"] for d in bot.decisions("STREAM_ROTATED"))  # market
        assert all(ROTATE_S <= d.data["age_s"] < LIMIT_S for d in bot.decisions("STREAM_ROTATED"))
        counters = ws_counters(handle)
        assert counters["closed_by_server"] == 0  # the simulator never had to close one
        said = bot.status()["snapshot"]["extras"]["streams"]["events"]
        assert any(e["code"] == "STREAM_ROTATED" and "no gap" in e["sentence"] for e in said)
        assert [e["code"] for e in bot.journal() if e["code"] == "STREAM_ROTATED"]
        # the market data kept flowing on the rotated connections
        book = await bot.do(lambda ctx: ctx.order_book(BTC, 5))
        assert book["bids"][0][0] < book["asks"][0][0]
    finally:
        await bot.stop()


async def test_events_in_flight_on_the_old_connection_at_the_switch_are_not_lost(
    sim_factory: Any, tmp_path: Path
) -> None:
    """The user stream's events reach the bot 300 ms after they happen (simulator delay):
    at each rotation, the fills made just before the new connection was registered are
    still on their way on the old one only. They must arrive all the same (the old
    connection is closed only after an overlap, and what it still delivers wakes the
    watches on the new one): closed at once, it took them with it (the CI failure of
    2026-12-07 was this race, hit by chance)."""
    handle = sim_factory(ws={"max_connection_s": LIMIT_S})
    toml = bot_toml(tmp_path, handle, reconcile_interval=600, stream_rotate_s=ROTATE_S)
    bot = await started(toml)
    try:
        control(handle, "/__sim/faults", {"streams": {"delay_ms": 300.0, "scope": "user"}})

        def user_rotations() -> list[Any]:
            return [d for d in bot.decisions("STREAM_ROTATED") if d.data["private"]]

        side = "buy"
        while len(user_rotations()) < 2:  # trade without pause through two rotations
            await bot.do(lambda ctx, side=side: ctx.market_order(BTC, side, 0.002))
            side = "sell" if side == "buy" else "buy"
        truth = await sim_trade_ids(handle, bot)
        await bot.until(lambda: len(fill_events(bot)) >= len(truth), timeout=10)
        ids = [e.fill.trade_id for e in fill_events(bot)]
        assert sorted(ids) == sorted(truth) and len(set(ids)) == len(ids)
        assert {e.source for e in fill_events(bot)} == {"stream"}
        for code in ("STREAM_DISCONNECTED", "STREAM_BACKFILL", "STREAM_ROTATE_FAILED"):
            assert not bot.decisions(code), [d.sentence for d in bot.decisions(code)]
        assert ws_counters(handle)["closed_by_server"] == 0
    finally:
        control(handle, "/__sim/faults", {})
        await bot.stop()


async def test_a_rotation_that_cannot_connect_keeps_the_old_connection(
    sim_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator refuses new handshakes when the rotation is due: the old user-stream
    connection is kept (no loss, fills still stream on it) and the rotation is tried again
    later, once handshakes are accepted."""
    monkeypatch.setattr(feed_module, "RETRY_S", 2.0)
    handle = sim_factory()  # the simulator's own 24 h limit stays far away
    toml = bot_toml(
        tmp_path, handle, stream_stale_s=30.0, reconcile_interval=600, stream_rotate_s=ROTATE_S
    )
    bot = await started(toml)
    try:
        control(handle, "/__sim/ws/refuse", {"ms": 4000})
        failed = await bot.until(
            lambda: [d for d in bot.decisions("STREAM_ROTATE_FAILED") if d.data["private"]]
        )
        assert "the old connection is kept" in failed[0].sentence
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))  # still streamed
        await bot.until(lambda: fill_events(bot))
        assert fill_events(bot)[0].source == "stream"
        await bot.until(
            lambda: [d for d in bot.decisions("STREAM_ROTATED") if d.data["private"]], timeout=30
        )
        lost = [d for d in bot.decisions("STREAM_DISCONNECTED") if d.data["stream"][:4] == "user"]
        assert not lost and not bot.decisions("STREAM_BACKFILL")
        assert [e.fill.trade_id for e in fill_events(bot)] == await sim_trade_ids(handle, bot)
    finally:
        control(handle, "/__sim/ws/refuse", {"ms": 0})
        await bot.stop()
