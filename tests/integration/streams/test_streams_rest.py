"""The streams' own REST (the listenKey, the order-book snapshot) goes through the guarded
pipeline: the simulator's own request counters are the truth it is compared with, request
for request, in the signed log; a kill switch standing never stops the listenKey."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from perpbot.audit.reader import iter_records
from perpbot.kill.sentinel import new_entry, write_sentinel
from perpbot.paths import logs_dir
from tests.integration.risk_support.bot import BTC, write_toml
from tests.integration.streams.support import bot_toml, control, feed_of, started, ws_counters

pytestmark = pytest.mark.timeout(90)

MARKET = ("mark", "book")
LISTEN_KEY, DEPTH = "/fapi/v1/listenKey", "/fapi/v1/depth"


def sim_paths(handle: Any) -> dict[str, int]:
    """The simulator's count of the REST requests it served, by path."""
    with urllib.request.urlopen(handle.base_url + "/__sim/state", timeout=10) as resp:
        return dict(json.loads(resp.read())["counters"]["per_path"])


def stream_calls(bot: Any) -> list[Any]:
    return [e for e in bot.events if getattr(e, "method", None) == "stream_rest"]


async def test_stream_rest_is_charged_and_logged_request_for_request(
    sim_factory: Any, tmp_path: Path, state_home: Path
) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle, audit=True))
    try:
        feed = feed_of(bot)
        control(handle, "/__sim/ws/close", {"code": 1006, "scope": "all"})  # resubscribe all
        await bot.until(lambda: bot.decisions("STREAM_BACKFILL"), timeout=30)
        await bot.until(lambda: feed.health[f"book {BTC}"].reconnects >= 1)  # a new snapshot
        truth = sim_paths(handle)
        await bot.until(lambda: len(stream_calls(bot)) >= truth[LISTEN_KEY] + truth[DEPTH])
    finally:
        await bot.stop()
    assert truth[LISTEN_KEY] >= 2 and truth[DEPTH] >= 2  # at start, and after the loss
    calls = stream_calls(bot)
    by_path = {p: [c for c in calls if c.path == p] for p in (LISTEN_KEY, DEPTH)}
    assert len(by_path[LISTEN_KEY]) == truth[LISTEN_KEY]
    assert len(by_path[DEPTH]) == truth[DEPTH]
    assert all(c.ok and c.status == 200 for c in calls)
    # the limiter saw each answer's usage headers (it header-syncs from them)
    assert all("x-mbx-used-weight-1m" in {k.lower() for k in c.rate_headers} for c in calls)
    records = [
        r
        for r in iter_records(logs_dir() / bot.runner.run_id)
        if r["kind"] == "exchange" and r["method"] == "stream_rest"
    ]
    logged = {p: sum(1 for r in records if r["path"] == p) for p in (LISTEN_KEY, DEPTH)}
    assert logged == {LISTEN_KEY: truth[LISTEN_KEY], DEPTH: truth[DEPTH]}
    assert not any("listenKey=" in json.dumps(r) for r in records)  # the key is not logged


async def test_a_standing_kill_never_stops_the_listen_key_keepalive(
    sim_factory: Any, tmp_path: Path, state_home: Path
) -> None:
    handle = sim_factory()
    bot = await started(bot_toml(tmp_path, handle))
    try:
        feed = feed_of(bot)
        key = feed.ex.options["linear"]["listenKey"]
        before = sim_paths(handle).get(LISTEN_KEY, 0)
        write_sentinel(new_entry("halt", "keepalive drill"))
        # the keepalive ccxt.pro sends every 20 minutes, made now, through the same path
        await feed.ex.fapiPrivatePutListenKey({"listenKey": key})
        after = sim_paths(handle).get(LISTEN_KEY, 0)
    finally:
        await bot.stop()
    assert after == before + 1  # it reached the exchange
    assert not bot.decisions("UNGUARDED_HTTP") and not [
        d for d in bot.decisions("KILL_ACTIVE") if "stream_rest" in d.sentence
    ]
    puts = [c for c in stream_calls(bot) if c.http_method == "PUT" and c.path == LISTEN_KEY]
    assert len(puts) == 1 and puts[0].ok


async def test_a_reconnect_storm_is_paced_by_the_shared_budget_with_no_refusal(
    sim_factory: Any, tmp_path: Path, state_home: Path
) -> None:
    """Three bots on one IP whose every stream is closed at once reconnect within the
    simulator's connection limit (6 per rolling 2 s here, 300 per 5 min on Binance): more
    connections than that are made, and the simulator refuses none of them."""
    limit, window = 6, 2
    handle = sim_factory(ws={"max_connections_per_window": limit, "connection_window_s": window})
    limits = {"ws_connections": limit, "ws_connection_window_s": window, "safety_margin": 0.0}
    bots: list[Any] = []
    try:
        for i in range(3):
            home = tmp_path / f"bot{i}"
            home.mkdir()
            toml = write_toml(
                home,
                handle.base_url,
                exchange={"stream_stale_s": 30.0},
                kill={"deadman": False},
                limits=limits,
            )
            bots.append(await started(toml))
        for bot in bots:  # every stream up (the start's connections were paced too)
            health = bot.runner.feed.health
            await bot.until(lambda h=health: all(h[f"{s} {BTC}"].last_msg for s in MARKET), 30)
        opened = ws_counters(handle)["opened"]
        control(handle, "/__sim/ws/close", {"code": 1006, "scope": "all"})
        for bot in bots:
            await bot.until(lambda bot=bot: bot.decisions("STREAM_BACKFILL"), timeout=30)
            health = bot.runner.feed.health
            await bot.until(lambda h=health: all(h[f"{s} {BTC}"].reconnects for s in MARKET), 30)
        counters = ws_counters(handle)
    finally:
        for bot in bots:
            await bot.stop()
    assert counters["refused"] == 0  # the exchange's truth: no handshake was refused
    assert counters["rate_limited"] == 0  # nor a connection closed for too many messages
    assert counters["opened"] > limit  # more than one window's worth: the storm was paced
    assert counters["opened"] - opened >= len(bots) * 2  # each bot reconnected its streams
    waits = [d for bot in bots for d in bot.decisions("RATE_WAIT_CONNECTIONS")]
    assert all("new-connection budget" in d.sentence for d in waits)


async def test_subscribe_messages_are_paced_per_connection(
    sim_factory: Any, tmp_path: Path, state_home: Path
) -> None:
    """Two symbols subscribe two streams on each market connection at start; with the
    simulator closing any connection that sends more than 1 message a second, pacing to
    its limit (``ws_messages_per_s = 2``: 1 per 1.1 s) keeps every connection open."""
    handle = sim_factory(ws={"max_incoming_per_s": 1})
    toml = write_toml(
        tmp_path,
        handle.base_url,
        strategy={"symbols": [BTC, "ETH/USDT:USDT"]},
        exchange={"stream_stale_s": 30.0},
        kill={"deadman": False},
        limits={"ws_messages_per_s": 2},
    )
    bot = await started(toml)
    try:
        health = bot.runner.feed.health
        await bot.until(lambda: all(h.last_msg for h in health.values() if not h.private), 30)
        counters = ws_counters(handle)
    finally:
        await bot.stop()
    assert counters["rate_limited"] == 0 and counters["closed_by_server"] == 0
    assert not bot.decisions("STREAM_DISCONNECTED")
