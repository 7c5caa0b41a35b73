"""What the streams tests share: a bot on streams against the simulator, and the
simulator's own records (its trades, its WebSocket counters) as the truth."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path
from typing import Any

import ccxt.async_support as ccxt_async

from perpbot.client.loopback import configure_loopback
from perpbot.engine.events import FillEvent
from perpbot.streams.feed import StreamFeed
from tests.integration.risk_support.bot import BTC, Bot, write_toml


def control(handle: Any, path: str, body: Any) -> Any:
    req = urllib.request.Request(
        handle.base_url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read() or b"null")


async def sim_trade_ids(handle: Any, bot: Bot) -> list[str]:
    """The simulator's own list of the bot's trades (the truth)."""
    creds = bot.runner.credentials
    ex = ccxt_async.binanceusdm({"apiKey": creds.api_key, "secret": creds.secret})
    configure_loopback(ex, handle.base_url)
    try:
        await ex.load_markets()
        return [str(t["id"]) for t in await ex.fetch_my_trades(BTC)]
    finally:
        await ex.close()


def bot_toml(tmp_path: Path, handle: Any, *, audit: bool = False, **exchange: Any) -> Path:
    return write_toml(
        tmp_path,
        handle.base_url,
        exchange={"stream_stale_s": 2.0, **exchange},
        kill={"deadman": False},
        audit={"enabled": audit},
    )


def feed_of(bot: Bot) -> StreamFeed:
    """The stream feed of a bot on streams."""
    feed = bot.runner.feed
    assert feed is not None
    return feed


def fill_events(bot: Bot) -> list[FillEvent]:
    return [e for e in bot.fill_log if isinstance(e, FillEvent)]


async def started(toml: Path) -> Bot:
    bot = Bot(toml)
    bot.fill_log = []  # type: ignore[attr-defined]
    bot.runner.engine_events.subscribe(bot.fill_log.append)  # type: ignore[attr-defined]
    await bot.__aenter__()
    feed = bot.runner.feed  # on streams: wait for the start-up reconcile (streams are up)
    await bot.until(lambda: feed is None or feed.counters["reconciles"] >= 1)
    return bot


def ws_state(handle: Any) -> dict[str, Any]:
    """The simulator's own WebSocket state: connections, listenKeys, counters."""
    with urllib.request.urlopen(handle.base_url + "/__sim/ws", timeout=10) as resp:
        return dict(json.loads(resp.read()))


def ws_counters(handle: Any) -> dict[str, int]:
    """The simulator's own WebSocket counters (connections opened, refused...)."""
    return dict(ws_state(handle)["counters"])


def listen_key_counters(handle: Any) -> dict[str, int]:
    """What the simulator was asked of its listenKeys (created, kept_alive, unknown...)."""
    return dict(ws_state(handle)["listen_key_counters"])
