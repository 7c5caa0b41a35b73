"""ACCOUNT_UPDATEs out of order (the simulator's ``reorder_rate`` fault holds a user-stream
event back behind the next one; ``drop_rate`` loses the events between) and a REST
reconcile answered between a change and its late stream event: the engine's position never
goes back to an older value, and ends at the simulator's own position.

The fault plans are laid out event by event: a market order is four user-stream events
(ORDER_TRADE_UPDATE NEW, TRADE_LITE, ORDER_TRADE_UPDATE TRADE, ACCOUNT_UPDATE), a leverage
change one (ACCOUNT_CONFIG_UPDATE); ``reorder_rate = 1`` holds every other event.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perpbot.streams.feed import StreamFeed
from tests.integration.risk_support.bot import BTC, BTC_ID, Bot
from tests.integration.streams.support import bot_toml, control, feed_of, started, ws_counters

pytestmark = pytest.mark.timeout(90)
LOT = 0.002
HOLD_EVERY_OTHER = {"streams": {"reorder_rate": 1.0, "scope": "user"}}
LOSE_THREE = {"streams": {"drop_rate": 1.0, "count": 3, "scope": "user"}}
LOSE_FOUR = {"streams": {"drop_rate": 1.0, "count": 4, "scope": "user"}}


def sim_position(handle: Any, bot: Bot) -> float:
    """The simulator's own position of the bot's account (the truth)."""
    key = bot.runner.credentials.api_key
    account = next(a for a in handle.state()["accounts"] if a["api_key"] == key)
    rows = [p for p in account["positions"] if p["symbol"] == BTC_ID]
    return float(rows[0]["positionAmt"]) if rows else 0.0


def engine_position(bot: Bot) -> float:
    p = bot.runner.state.positions.get(BTC)
    return p.amount if p is not None else 0.0


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The engine's BTC position after each user-stream position update it read."""
    amounts: list[float] = []
    apply = StreamFeed._on_positions

    def watched(feed: StreamFeed, positions: list[dict[str, Any]]) -> None:
        apply(feed, positions)
        p = feed.state.positions.get(BTC)
        amounts.append(p.amount if p is not None else 0.0)

    monkeypatch.setattr(StreamFeed, "_on_positions", watched)
    return amounts


async def buy(bot: Bot) -> None:
    await bot.do(lambda ctx: ctx.market_order(BTC, "buy", LOT))


async def hold_an_account_update(bot: Bot, handle: Any) -> None:
    """Leaves the simulator holding back this buy's ACCOUNT_UPDATE: the leverage change's
    event is held, the buy's NEW releases it, its TRADE_LITE is held, its TRADE releases
    it, its ACCOUNT_UPDATE is held (until the next event)."""
    control(handle, "/__sim/faults", HOLD_EVERY_OTHER)
    await bot.do(lambda ctx: ctx.set_leverage(BTC, 5))
    await buy(bot)
    control(handle, "/__sim/faults", {})


async def test_an_account_update_behind_a_newer_one_is_not_applied(
    sim_factory: Any, tmp_path: Path, seen: list[float]
) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle, reconcile_interval=600))
    try:
        feed = feed_of(bot)
        await buy(bot)
        await bot.until(lambda: engine_position(bot) == pytest.approx(LOT))
        await hold_an_account_update(bot, handle)  # 2 lots, its update held back
        control(handle, "/__sim/faults", LOSE_THREE)  # the next buy's order events lost
        await buy(bot)  # 3 lots: its ACCOUNT_UPDATE goes out, then the held one (2 lots)
        control(handle, "/__sim/faults", {})
        assert sim_position(handle, bot) == pytest.approx(3 * LOT)
        await bot.until(lambda: feed.counters["reordered_positions"] >= 1)
        assert engine_position(bot) == pytest.approx(3 * LOT)
        assert seen == sorted(seen) and seen[-1] == pytest.approx(3 * LOT), seen
        counters = ws_counters(handle)
        assert counters["events_reordered"] >= 3 and counters["events_dropped"] == 3
        await feed.reconcile("test")  # REST agrees (and backfills the lost fill)
        assert engine_position(bot) == pytest.approx(sim_position(handle, bot))
    finally:
        control(handle, "/__sim/faults", {})
        await bot.stop()


async def test_a_late_account_update_does_not_undo_a_newer_rest_answer(
    sim_factory: Any, tmp_path: Path, seen: list[float]
) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle, reconcile_interval=600))
    try:
        feed = feed_of(bot)
        await hold_an_account_update(bot, handle)  # 1 lot, its update held back
        control(handle, "/__sim/faults", LOSE_FOUR)  # every event of the next buy lost
        await buy(bot)  # 2 lots; the stream said nothing of it
        control(handle, "/__sim/faults", {})
        await feed.reconcile("test")  # REST reads 2 lots
        assert engine_position(bot) == pytest.approx(2 * LOT) == sim_position(handle, bot)
        # the next event releases the held ACCOUNT_UPDATE (1 lot, older than REST's answer)
        before = feed.counters["stale_positions"]
        await bot.do(lambda ctx: ctx.set_leverage(BTC, 4))
        await bot.until(lambda: feed.counters["stale_positions"] > before)
        assert engine_position(bot) == pytest.approx(2 * LOT) == sim_position(handle, bot)
        assert all(a == pytest.approx(2 * LOT) for a in seen), seen
    finally:
        control(handle, "/__sim/faults", {})
        await bot.stop()
