"""The streams' small parts: backoff with jitter, stream health, the market cache's age rule,
the engine's event source."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from perpbot.client.account import OpenOrder
from perpbot.config import ExchangeSection
from perpbot.engine.events import EngineEvents, OrderEvent
from perpbot.engine.reconcile import position_of
from perpbot.engine.state import PositionSnapshot, RunState
from perpbot.errors import BadInput
from perpbot.streams import streams_enabled
from perpbot.streams.evidence import OwedEvents, not_resting
from perpbot.streams.exchange import drop_reordered, stamp_transaction_time
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


def _resting(side: str, price: float, seen_at: float = 100.0) -> OpenOrder:
    return OpenOrder("pb-1", "1", "BTC/USDT:USDT", side, "limit", 1.0, 1.0, price, False,
                     seen_at=seen_at)  # fmt: skip


def test_the_book_shows_a_resting_order_gone_only_when_it_cannot_rest() -> None:
    book = {"bids": [[99.0, 1.0]], "asks": [[101.0, 1.0]]}
    assert not not_resting(_resting("buy", 99.0), book)  # at the best bid: resting
    assert not not_resting(_resting("buy", 98.0), book)  # deeper: may rest, no judgement
    assert not_resting(_resting("buy", 100.0), book)  # above the best bid: not there
    assert not_resting(_resting("buy", 101.5), book)  # crossed by the asks
    assert not not_resting(_resting("sell", 101.0), book)
    assert not_resting(_resting("sell", 100.0), book)
    assert not_resting(_resting("sell", 98.5), book)


def test_owed_events_wait_the_grace_judge_newer_books_only_and_accuse_once() -> None:
    owed = OwedEvents(grace_s=1.0)
    gone = {"bids": [[90.0, 1.0]], "asks": [[91.0, 1.0]]}
    orders = {"pb-1": _resting("buy", 99.0, seen_at=100.0)}
    sym = "BTC/USDT:USDT"
    # a book that has not changed since the run learnt of the order proves nothing
    assert owed.check(orders, {sym: gone}, {sym: 99.0}, now=0.0) == []
    assert owed.check(orders, {sym: gone}, {sym: 99.0}, now=5.0) == []
    assert owed.check(orders, {sym: gone}, {sym: 101.0}, now=10.0) == []  # first seen gone
    assert owed.check(orders, {sym: gone}, {sym: 101.0}, now=10.9) == []  # within the grace
    (due,) = owed.check(orders, {sym: gone}, {sym: 101.0}, now=11.0)
    assert due.key == "pb-1" and due.owed_s == pytest.approx(1.0) and due.best_bid == 90.0
    assert owed.check(orders, {sym: gone}, {sym: 101.0}, now=20.0) == []  # once per order
    # evidence that goes away (the book showed the order after all) starts over
    other = {"pb-2": _resting("buy", 99.0, seen_at=100.0)}
    resting = {"bids": [[99.0, 1.0]], "asks": [[100.0, 1.0]]}
    assert owed.check(other, {sym: gone}, {sym: 101.0}, now=30.0) == []
    assert owed.check(other, {sym: resting}, {sym: 101.0}, now=30.5) == []
    assert owed.check(other, {sym: gone}, {sym: 101.0}, now=31.2) == []
    assert owed.check(other, {sym: gone}, {sym: 101.0}, now=32.2) != []


def at(amount: float, ms: int | None, side: str | None = None) -> PositionSnapshot:
    return PositionSnapshot("X", amount, position_side=side, updated_ms=ms)


def test_an_older_position_update_is_admitted_only_when_it_changes_nothing() -> None:
    state = RunState(run_id="r", strategy="s", symbols=["X"])
    assert state.admit(at(0.002, 100)) and state.admit(at(0.004, 200))
    state.positions["X"] = at(0.004, 200)
    assert not state.admit(at(0.002, 150))  # out of order: another amount
    assert state.admit(at(0.004, 150))  # REST's older read of the same position
    assert state.admit(at(0.002, None))  # undated: nothing to compare
    assert state.position_ms["X"] == 200
    # a hedge-mode side that went flat leaves ``legs``; its time stays
    assert state.admit(at(0.0, 300, "LONG")) and "X|LONG" not in state.legs
    assert not state.admit(at(0.002, 250, "LONG"))


def test_a_reordered_account_update_leaves_ccxt_pros_newer_position_in_place() -> None:
    cache = [{"symbol": "X", "info": {"s": "XUSDT", "ps": "BOTH", "pa": "0.006", "T": 300}}]
    late = {"e": "ACCOUNT_UPDATE", "E": 305, "T": 200,
            "a": {"P": [{"s": "XUSDT", "ps": "BOTH", "pa": "0.004"},
                        {"s": "YUSDT", "ps": "BOTH", "pa": "1"}]}}  # fmt: skip
    stamp_transaction_time(late)
    assert [r["T"] for r in late["a"]["P"]] == [200, 200]
    assert drop_reordered(late, {"linear": cache}) == 1
    assert [r["s"] for r in late["a"]["P"]] == ["YUSDT"]  # another symbol: kept
    assert position_of({"symbol": "X", "info": {"pa": "1", "T": 200}}).updated_ms == 200
    assert position_of({"symbol": "X", "info": {"updateTime": 0}}).updated_ms is None
