"""The user stream's listenKey over time (nautilus_trader#3861: a bot that never came back
after its key expired). Binance keeps a key 60 min from its last keepalive (PUT) and answers
-1125 once it is gone; both times are compressed here so several validity periods pass in
seconds. The simulator's own listenKey counters, WebSocket state and trade list are the
truth."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from tests.integration.risk_support.bot import BTC
from tests.integration.streams.support import (
    bot_toml,
    control,
    feed_of,
    fill_events,
    listen_key_counters,
    sim_trade_ids,
    started,
    ws_counters,
    ws_state,
)

pytestmark = pytest.mark.timeout(60)

VALIDITY_S = 2.0  # the simulator's [ws] listen_key_validity_s (Binance: 3600)
KEEPALIVE_S = 0.4  # the bot's [exchange] listen_key_keepalive_s (default 1200)
PERIODS = 4  # validity periods the first run lasts


def user_losses(bot: Any) -> list[Any]:
    return [d for d in bot.decisions("STREAM_DISCONNECTED") if d.data["stream"].startswith("user")]


async def test_the_bots_own_keepalives_keep_a_short_lived_key_alive(
    sim_factory: Any, tmp_path: Path
) -> None:
    handle = sim_factory(ws={"listen_key_validity_s": VALIDITY_S})
    toml = bot_toml(tmp_path, handle, listen_key_keepalive_s=KEEPALIVE_S, reconcile_interval=600)
    bot = await started(toml)
    try:
        feed = feed_of(bot)
        assert listen_key_counters(handle)["created"] == 1
        await asyncio.sleep(PERIODS * VALIDITY_S)  # the key would have lapsed PERIODS times
        keys = listen_key_counters(handle)
        # one key all along, kept alive by PUTs only: never re-created, never re-POSTed,
        # never expired, no keepalive answered -1125
        assert (keys["created"], keys["renewed"], keys["unknown"]) == (1, 0, 0)
        assert (keys["expired"], keys["forgotten"], keys["deleted"]) == (0, 0, 0)
        assert keys["kept_alive"] >= PERIODS  # at least one in each validity period
        state = ws_state(handle)
        assert len(state["listen_keys"]) == 1
        assert state["counters"]["closed_by_server"] == 0
        assert [c["private"] for c in state["connections"]].count(True) == 1
        assert not user_losses(bot) and feed.counters["backfills"] == 0
        # the key's stream still carries the account's events: a fill now arrives on it
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == 1)
        (fill,) = fill_events(bot)
        assert fill.source == "stream"
        assert await sim_trade_ids(handle, bot) == [fill.fill.trade_id]
        assert feed.counters["reconciles"] == 1  # the start-up one only: no REST backfill
    finally:
        await bot.stop()


async def test_a_silently_expired_key_is_found_by_the_keepalive_and_recreated(
    sim_factory: Any, tmp_path: Path
) -> None:
    """The key is gone with no listenKeyExpired reaching the bot (its connection open and
    silent): the next keepalive gets -1125, the bot creates a new key, resubscribes and
    backfills; the fill made meanwhile is counted once."""
    handle = sim_factory()
    toml = bot_toml(tmp_path, handle, listen_key_keepalive_s=KEEPALIVE_S, reconcile_interval=600)
    bot = await started(toml)
    try:
        feed_of(bot)  # (the bot runs on streams)
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == 1)
        assert fill_events(bot)[0].source == "stream"
        # the keepalives are under way (ccxt.pro's own single one after the POST is past)
        await bot.until(lambda: listen_key_counters(handle)["kept_alive"] >= 2)
        # new connections are refused until the meanwhile fill is made, so it cannot
        # reach the bot on a stream whichever comes first, the fill or the keepalive
        control(handle, "/__sim/faults", {"streams": {"refuse_connections": True}})
        dropped = time.monotonic()
        assert control(handle, "/__sim/ws/expire_listen_keys", {"silent": True}) == {"expired": 1}
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        (meanwhile,) = set(await sim_trade_ids(handle, bot)) - {fill_events(bot)[0].fill.trade_id}
        await bot.until(lambda: listen_key_counters(handle)["unknown"] >= 1, timeout=10)
        # found by the next keepalive (slack: the order above, a loaded machine)
        assert time.monotonic() - dropped < KEEPALIVE_S + 2.5
        (lost, *_) = await bot.until(lambda: user_losses(bot))
        assert "-1125" in lost.sentence
        opened = ws_counters(handle)["opened"]
        control(handle, "/__sim/faults", {})
        (backfill, *_) = await bot.until(lambda: bot.decisions("STREAM_BACKFILL"), timeout=30)
        assert meanwhile in backfill.data["trade_ids"]
        truth = await sim_trade_ids(handle, bot)
        ids = [e.fill.trade_id for e in fill_events(bot)]
        assert sorted(ids) == sorted(truth) and len(set(ids)) == len(ids)  # once each
        assert [f.trade_id for f in bot.runner.ledger.fills] == ids
        assert next(e for e in fill_events(bot) if e.fill.trade_id == meanwhile).source == "rest"
        keys = listen_key_counters(handle)
        # one keepalive met the dead key (-1125), and a new key was created (POST)
        assert (keys["forgotten"], keys["unknown"], keys["created"]) == (1, 1, 2)
        assert keys["expired"] == 0  # no listenKeyExpired was ever sent
        # resubscribed on the new key (a connection accepted since the refusals ended):
        # the dead key's connection is closed, and a fill now reaches the bot on the stream
        await bot.until(lambda: ws_counters(handle)["opened"] > opened, timeout=20)
        state = ws_state(handle)
        assert [c["private"] for c in state["connections"]].count(True) == 1
        await bot.do(lambda ctx: ctx.market_order(BTC, "sell", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == len(truth) + 1)
        assert fill_events(bot)[-1].source == "stream"
        assert ws_counters(handle)["closed_by_server"] == 0
    finally:
        control(handle, "/__sim/faults", {})
        await bot.stop()
