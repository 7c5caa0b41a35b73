"""The streams' small parts: backoff with jitter, stream health, the market cache's age rule,
the engine's event source."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from perpbot.config import ExchangeSection
from perpbot.engine.events import EngineEvents, OrderEvent
from perpbot.errors import BadInput
from perpbot.streams import streams_enabled
from perpbot.streams.health import Backoff, StreamHealth
from perpbot.streams.market import MarketCache


def test_backoff_grows_is_capped_and_jittered() -> None:
    b = Backoff(random.Random(1), base_s=0.2, cap_s=2.0)
    delays = [b.next() for _ in range(8)]
    for k, d in enumerate(delays):
        step = min(2.0, 0.2 * 2**k)
        assert step / 2 <= d <= step
    assert len({round(d, 6) for d in delays[4:]}) > 1  # jitter: capped steps still differ
    b.reset()
    assert b.next() <= 0.2


def test_two_bots_do_not_reconnect_in_lockstep() -> None:
    a, b = Backoff(random.Random(1)), Backoff(random.Random(2))
    assert [round(a.next(), 4) for _ in range(5)] != [round(b.next(), 4) for _ in range(5)]


def test_health_states() -> None:
    h = StreamHealth(name="mark X", private=False, cadence_s=1.0)
    assert h.to_dict()["age_s"] is None and h.to_dict()["state"] == "up"
    h.seen(now=10.0)
    assert h.age(now=12.5) == pytest.approx(2.5)
    h.stale = True
    assert h.to_dict(now=12.5)["state"] == "stale"
    h.seen(now=13.0)
    assert not h.stale
    h.down_since = 14.0
    assert h.to_dict()["state"] == "down"


def test_market_cache_serves_only_fresh_data() -> None:
    cache = MarketCache(max_age_s=2.0)
    now_ms = int(time.time() * 1000)
    book = {"bids": [[100.0, 1.0], [99.0, 2.0]], "asks": [[101.0, 1.0]], "timestamp": now_ms}
    cache.set_book("X", book)
    got = cache.order_book("X", 1)
    assert got is not None and got["bids"] == [[100.0, 1.0]]
    assert cache.order_book("X", 500) is None  # deeper than the stream keeps: ask REST
    cache.set_book("X", {**book, "timestamp": now_ms - 5000})
    assert cache.order_book("X", 5) is None  # stale: ask REST, like before streams
    cache.set_mark("X", {"markPrice": 100.5, "timestamp": now_ms, "info": {"r": "0.0001"}})
    f = cache.mark_funding("X")
    assert f is not None and f["fundingRate"] == pytest.approx(0.0001)
    assert cache.mark_funding("Y") is None


def test_streams_default_on_where_ccxt_pro_has_the_exchange() -> None:
    assert streams_enabled(ExchangeSection(id="sim"))
    assert not streams_enabled(ExchangeSection(id="sim", streams=False))
    assert not streams_enabled(ExchangeSection(id="coinmate"))  # no ccxt.pro class
    with pytest.raises(BadInput, match="streams = false"):
        streams_enabled(ExchangeSection(id="coinmate", streams=True))


async def test_engine_events_reach_callbacks_and_iterators() -> None:
    events = EngineEvents()
    got: list[object] = []
    events.subscribe(got.append)
    it = events.iterate()
    nxt = asyncio.ensure_future(it.__anext__())
    await asyncio.sleep(0)
    ev = OrderEvent(
        client_order_id="c", symbol="X", status="open", filled=0.0, order={}, source="stream"
    )
    events.publish(ev)
    assert got == [ev]
    assert await asyncio.wait_for(nxt, 1) is ev
    await it.aclose()
