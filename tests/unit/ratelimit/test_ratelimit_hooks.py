"""The HTTP hooks alone: leases, blocks seen across processes, header corrections, 429s."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import pytest

from perpbot.client.request import HttpRecord, Request, reducing_risk
from perpbot.client.waits import Interrupter
from perpbot.errors import RuntimeFailure
from perpbot.events import Decision, EventBus
from perpbot.kill.deadman import COUNTDOWN_METHOD
from perpbot.ratelimit import budget
from perpbot.ratelimit.budget import Policy
from perpbot.ratelimit.hooks import CANCEL_PATIENCE_S, HttpBudget, RateWait
from perpbot.ratelimit.host import HostBudget
from perpbot.ratelimit.layer import REFRESH_METHOD, RulesKeeper
from perpbot.ratelimit.rules import Rule, RuleSet
from perpbot.ratelimit.stores import MemoryStore, unavailable

TICKER = "http://h/fapi/v1/ticker/24hr?symbol=BTCUSDT"


class CountingStore(MemoryStore):
    transactions = 0

    def transact(self, fn: Any) -> Any:
        CountingStore.transactions += 1
        return super().transact(fn)


class DownStore(CountingStore):
    """A store that cannot be written once ``down`` (its disk is full)."""

    down = False

    def transact(self, fn: Any) -> Any:
        if self.down:
            raise unavailable(self.description, OSError("database or disk is full"))
        return super().transact(fn)


def process(
    host_name: str,
    limit: int = 2400,
    store: type[CountingStore] = CountingStore,
    rereads: bool = False,
) -> tuple[HttpBudget, list[Decision]]:
    """One perpbot process's hooks on ``host_name`` (same name = same shared state); its
    exchange has no exchangeInfo method (the rules are not re-read) unless ``rereads``."""
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    exchange = SimpleNamespace(options={})
    if rereads:
        setattr(exchange, REFRESH_METHOD, None)  # (only its presence is asked)
    host = HostBudget(
        store=store(host_name), policy=Policy(), bus=bus, exchange=exchange, key_id="k"
    )
    rules = RulesKeeper(host, 60.0, None, exchange)
    rules.install(RuleSet((Rule("weight", 60, limit), Rule("orders", 10, 300)), "exchange"))
    return HttpBudget(host=host, every=rules.every, interrupter=Interrupter()), seen


async def charge(hooks: HttpBudget, record: HttpRecord, request: Request) -> None:
    """Run the before-hook as the transport does (None, or an awaitable when it waits)."""
    pending = hooks.before_http(record, request)
    if pending is not None:
        await pending


async def send(hooks: HttpBudget, url: str = TICKER, status: int = 200, **headers: str) -> None:
    request = Request("fetch_ticker")
    record = HttpRecord("GET", url, urlsplit(url).path)
    request.http.append(record)
    await charge(hooks, record, request)
    record.status = status
    record.read_headers(headers)  # as the transport reads a response's
    if status >= 400:
        record.error_code = -1003
    hooks.after_http(record, request)
    await hooks.host.settled()  # what the response hook queued for the store has run


NO_RESERVE = Policy(reserve=0.0)


async def test_most_requests_spend_from_a_lease_without_a_shared_transaction() -> None:
    hooks, _ = process("hooks-1:1")
    await send(hooks)
    before = CountingStore.transactions
    for _ in range(20):
        await send(hooks)
    # leases come out of the ordinary part of the cap: 2280 less the 10 % reserve = 2052,
    # 2052 // 40 = 51 units leased
    assert CountingStore.transactions == before
    st = hooks.host.store.read()
    assert st.buckets["weight/60s"].used == 1 + 51  # the lease is counted by everyone


async def test_a_block_met_by_another_process_stops_the_lease_at_once() -> None:
    mine, _ = process("hooks-2:1")
    other, seen = process("hooks-2:1")
    await send(mine)
    await send(other, status=429, **{"Retry-After": "7", "X-MBX-USED-WEIGHT-1M": "2500"})
    assert [d.code for d in seen] == ["RATE_TIGHTEN_429"]
    assert "429 with Retry-After 7 s on GET /fapi/v1/ticker/24hr" in seen[0].sentence
    request = Request("fetch_ticker")
    record = HttpRecord("GET", TICKER, "/fapi/v1/ticker/24hr")
    request.http.append(record)
    with pytest.raises(RateWait) as held:
        await charge(mine, record, request)
    assert held.value.admission.reason == "retry_after" and 6 < held.value.admission.wait_s <= 7
    assert request.http == []  # it never left
    assert mine.host.mirror.blocked_until > 0  # and the mirror now knows


async def test_headers_raise_the_shared_count_to_what_the_exchange_counted() -> None:
    hooks, _ = process("hooks-3:1")
    await send(hooks)
    await send(hooks, **{"X-MBX-USED-WEIGHT-1M": "2100"})  # near the cap: written at once
    assert hooks.host.store.read().buckets["weight/60s"].used == 2100
    with pytest.raises(RateWait) as held:  # 2100 + what is left of the lease: no room
        for _ in range(500):  # the rest of the lease, then what is left under the cap
            await send(hooks, **{"X-MBX-USED-WEIGHT-1M": "2100"})
    # 2100 is past what ordinary requests may use (2052): the rest is the cancels' reserve
    assert held.value.admission.reason == "reserve"


async def test_a_request_heavier_than_the_whole_limit_is_refused() -> None:
    hooks, _ = process("hooks-4:1", limit=15)
    with pytest.raises(RuntimeFailure) as err:
        await send(hooks, "http://h/fapi/v1/depth?symbol=BTCUSDT&limit=1000")
    assert err.value.code == "RATE_REQUEST_TOO_HEAVY"
    assert "costs 20 weight, more than the exchange's whole limit of 15 per 1m" in str(
        err.value.message
    )


def test_lease_size_shrinks_as_the_window_fills() -> None:
    st = budget.HostState()  # (no reserve: the lease maths alone)
    rules = RuleSet((Rule("weight", 60, 1000),), "exchange")
    budget.apply_rules(st, rules, 0.0, NO_RESERVE)
    name = budget.weight_name(60)
    first = budget.acquire(st, {name: 1}, 1.0, NO_RESERVE, lease=True)
    assert first.leased == {name: 23}  # cap 950 // 40
    st.buckets[name].used = 940
    late = budget.acquire(st, {name: 1}, 1.0, NO_RESERVE, lease=True)
    assert late.leased == {name: 1}  # (950 - 941) // 8
    st.buckets[name].used = 945
    assert budget.acquire(st, {name: 1}, 1.0, NO_RESERVE, lease=True).leased == {}
    st.buckets[name].safe = 0  # probing: spent in the open, one at a time
    assert budget.acquire(st, {name: 1}, 70.0, NO_RESERVE, lease=True).leased == {}


@pytest.mark.parametrize(
    ("url", "weight"),
    [
        (TICKER, 1),
        ("http://h/fapi/v1/ticker/24hr", 40),  # every symbol
        ("http://h/fapi/v1/depth?symbol=BTCUSDT&limit=5", 2),
        ("http://h/fapi/v1/depth?symbol=BTCUSDT&limit=1000", 20),
        ("http://h/fapi/v1/openOrders?timestamp=1&signature=ab", 40),  # signed, no symbol
        ("http://h/fapi/v1/openOrders?symbol=BTCUSDT&timestamp=2&signature=cd", 1),
    ],
)
async def test_each_request_is_charged_its_own_parameters_weight(url: str, weight: int) -> None:
    hooks, _ = process("hooks-cost:1", limit=1_000_000)
    await send(hooks)  # takes this process's lease
    for _ in range(3):  # the same URL again: still its own weight
        before = hooks.lease.unspent()["weight/60s"]
        await send(hooks, url)
        assert before - hooks.lease.unspent()["weight/60s"] == weight


WINDOW_START = 60.0 * 16_666_667  # a minute window starts here (windows align to their length)


class Clock:
    """The wall clock (exchange windows), by hand."""

    def __init__(self, wall: float) -> None:
        self.wall, self.mono = wall, 1000.0

    def time(self) -> float:
        return self.wall

    def monotonic(self) -> float:
        return self.mono


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    from perpbot.ratelimit import host

    c = Clock(wall=WINDOW_START + 59.9)  # 0.1 s before a 60 s window ends
    monkeypatch.setattr(host, "time", c)
    return c


async def test_a_lease_is_never_spent_past_its_window(clock: Clock) -> None:
    hooks, _ = process("hooks-window:1", limit=1_000_000)
    await send(hooks)
    first = hooks.lease
    assert first.charge.starts["weight/60s"] == WINDOW_START and first.unspent()["weight/60s"] > 10
    await send(hooks)  # from the lease
    clock.wall += 0.2  # the next window: the lease has expired with its window
    before = CountingStore.transactions
    await send(hooks)
    assert CountingStore.transactions == before + 1
    assert hooks.lease.charge.starts["weight/60s"] == WINDOW_START + 60


async def test_usage_headers_are_written_when_they_say_more_than_is_known(clock: Clock) -> None:
    hooks, _ = process("hooks-headers:1", limit=2400)
    used = lambda: hooks.host.store.read().buckets["weight/60s"].used  # noqa: E731
    await send(hooks, **{"X-MBX-USED-WEIGHT-1M": "500"})  # more than known: written
    assert used() == 500
    await send(hooks, **{"X-MBX-USED-WEIGHT-1M": "600"})  # far from the cap too
    assert used() == 600
    before = CountingStore.transactions
    await send(hooks, **{"X-MBX-USED-WEIGHT-1M": "2"})  # less than known: nothing to write
    assert CountingStore.transactions == before and used() == 600


async def test_the_stops_requests_never_wait_for_a_due_rules_reread(clock: Clock) -> None:
    """The rules' re-read is due (a new period began) and the store cannot be written (a
    full disk): what the stop and the kill switch send (inside ``reducing_risk()``: their
    listings, the dead-man countdown) and a cancel still leave; an ordinary request is held
    for the re-read, and refused once the store is down."""
    hooks, seen = process("hooks-reread:1", store=DownStore, rereads=True)
    await send(hooks)
    clock.wall += 60.0  # the next 60 s period: the rules are to be re-read
    assert budget.refresh_due(hooks.host.mirror, clock.wall, hooks.every)
    listing = "http://h/fapi/v1/openOrders?symbol=BTCUSDT"
    countdown = "http://h/fapi/v1/countdownCancelAll?symbol=BTCUSDT"
    cancel = "http://h/fapi/v1/order?symbol=BTCUSDT"

    async def charged(method: str, http_method: str, url: str) -> HttpRecord:
        hooks.lease = None  # each one goes to the store
        request = Request(method)
        record = HttpRecord(http_method, url, urlsplit(url).path)
        request.http.append(record)
        await charge(hooks, record, request)
        return record

    with pytest.raises(RateWait) as held:  # an ordinary read waits for the re-read
        await charged("fetch_open_orders", "GET", listing)
    assert held.value.admission.reason == "refresh"
    with reducing_risk():  # the stop's listing: charged, not held
        assert (await charged("fetch_open_orders", "GET", listing)).charge is not None
    DownStore.down = True
    try:
        with reducing_risk():  # each leaves (no raise): the transport would send it
            await charged("fetch_open_orders", "GET", listing)
            await charged(COUNTDOWN_METHOD, "POST", countdown)  # ahead of the store's answer
        await charged("cancel_order", "DELETE", cancel)
        down = [d.data["request"] for d in seen if d.code == "RATE_STORE_DOWN_REDUCING_SENT"]
        assert down == ["GET /fapi/v1/openOrders", "DELETE /fapi/v1/order"]
        with pytest.raises(RuntimeFailure) as refused:  # an ordinary one fails closed
            await charged("fetch_open_orders", "GET", listing)
        assert refused.value.code == "RATE_STORE_UNAVAILABLE"
    finally:
        DownStore.down = False


async def test_a_held_back_request_is_a_not_sent_error_and_never_reaches_the_exchange() -> None:
    from perpbot.client.errors import NotSent

    mine, _ = process("hooks-notsent:1")
    other, _ = process("hooks-notsent:1")
    await send(other, status=429, **{"Retry-After": "5"})
    request = Request("fetch_ticker")
    record = HttpRecord("GET", TICKER, "/fapi/v1/ticker/24hr")
    request.http.append(record)
    with pytest.raises(NotSent) as held:  # what the transport and the retrier look for
        await charge(mine, record, request)
    assert isinstance(held.value, RateWait) and held.value.admission.reason == "retry_after"
    assert request.http == [] and record.charge is None


async def test_a_cancel_does_not_wait_for_a_store_that_does_not_answer() -> None:
    """The store thread is stuck (another process's lock): a cancel leaves after 20 ms and
    is charged once the store answers; a read waits for the store."""
    hooks, seen = process("hooks-slow:1")
    stuck = threading.Event()
    hooks.host.submit(lambda st: stuck.wait(5))  # the store thread is busy until set
    cancel = Request("cancel_order")
    record = HttpRecord("DELETE", "http://h/fapi/v1/order?symbol=BTCUSDT", "/fapi/v1/order")
    cancel.http.append(record)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await charge(hooks, record, cancel)
    assert CANCEL_PATIENCE_S <= loop.time() - t0 < 0.5
    assert [d.code for d in seen if d.code.startswith("RATE_STORE")] == [
        "RATE_STORE_SLOW_CANCEL_SENT"
    ]
    read = Request("fetch_ticker")
    record = HttpRecord("GET", TICKER, "/fapi/v1/ticker/24hr")
    read.http.append(record)
    pending = asyncio.ensure_future(charge(hooks, record, read))
    await asyncio.sleep(0.1)
    assert not pending.done()  # a read waits for its budget
    stuck.set()
    await pending
    await hooks.host.settled()
    await asyncio.sleep(0.01)
    used = hooks.host.store.read().buckets["weight/60s"].used
    leased = sum(hooks.lease.unspent().values())  # reserved, not spent
    assert used - leased == 2  # the cancel was charged once the store answered, the read too


def cancel_request() -> tuple[Request, HttpRecord]:
    cancel = Request("cancel_order")
    record = HttpRecord("DELETE", "http://h/fapi/v1/order?symbol=BTCUSDT", "/fapi/v1/order")
    cancel.http.append(record)
    return cancel, record


def sent_without_store(seen: list[Decision]) -> list[Decision]:
    return [d for d in seen if d.code == "RATE_STORE_SLOW_CANCEL_SENT"]


async def all_answered(hooks: HttpBudget) -> None:
    """Wait until the store thread has run everything queued so far (it runs in order),
    the late answers were taken and the leases they replaced given back."""
    await asyncio.wrap_future(hooks.host.submit(lambda st: None))
    await asyncio.sleep(0.01)  # the late answers' callbacks, scheduled by the store thread
    await hooks.host.settled()


async def test_once_a_cancel_left_a_stuck_store_behind_the_next_ones_leave_at_once() -> None:
    """The store thread is stuck: the first cancel waits the patience, the next ones do not
    wait again while the store has not answered; once it has, a cancel waits for it again,
    and a store stuck longer than the patience is not waited for at all."""
    hooks, seen = process("hooks-stuck:1")
    stuck = threading.Event()
    hooks.host.submit(lambda st: stuck.wait(5))
    for _ in range(5):
        cancel, record = cancel_request()
        await charge(hooks, record, cancel)
        assert cancel.http == [record]  # it left
    left = sent_without_store(seen)
    assert len(left) == 5
    assert left[0].data["waited_ms"] >= CANCEL_PATIENCE_S * 1000.0
    assert "which has not answered for 0.02 s" in left[0].sentence
    assert [d.data["waited_ms"] for d in left[1:]] == [0.0] * 4
    assert all("has not answered since an earlier cancel left" in d.sentence for d in left[1:])
    stuck.set()
    await all_answered(hooks)
    used = hooks.host.store.read().buckets["weight/60s"].used
    assert used - sum(hooks.lease.unspent().values()) == 5  # each charged once answered

    hooks.lease = None  # void (as a 429 does): the next cancel goes to the store
    cancel, record = cancel_request()
    await charge(hooks, record, cancel)  # the store answers again: waited for, as ever
    assert len(sent_without_store(seen)) == 5 and record.charge is not None

    stuck.clear()
    hooks.host.submit(lambda st: stuck.wait(5))  # stuck again, from before the cancels
    await asyncio.sleep(CANCEL_PATIENCE_S * 2)
    hooks.lease = None
    cancels = [cancel_request() for _ in range(12)]  # a kill's cancels, sent together
    await asyncio.gather(*(charge(hooks, record, cancel) for cancel, record in cancels))
    left = sent_without_store(seen)[5:]
    assert len(left) == 12 and [d.data["waited_ms"] for d in left] == [0.0] * 12
    assert "which has been on one transaction for 0.0" in left[0].sentence
    stuck.set()
    await all_answered(hooks)
    hooks.host.close()


async def test_a_kills_cancel_leaves_as_it_asks_the_store_and_is_charged_when_it_answers() -> None:
    """Inside ``reducing_risk()`` (the kill switch, the stop) a cancel does not wait for the
    store at all: a stuck store is said once the patience has passed without an answer; a
    healthy one says nothing, and both charge the cancel when they answer."""
    hooks, seen = process("hooks-kill:1")
    stuck = threading.Event()
    hooks.host.submit(lambda st: stuck.wait(5))  # idle until now: nothing knows it is stuck
    loop = asyncio.get_running_loop()
    with reducing_risk():
        cancels = [cancel_request() for _ in range(2)]  # the kill's first batch
        t0 = loop.time()
        await asyncio.gather(*(charge(hooks, record, cancel) for cancel, record in cancels))
        assert loop.time() - t0 < CANCEL_PATIENCE_S  # left without waiting the patience
        assert all(cancel.http == [record] for cancel, record in cancels)
        assert sent_without_store(seen) == []  # not known slow yet
        await asyncio.sleep(CANCEL_PATIENCE_S * 2)
        left = sent_without_store(seen)
        assert [d.data["waited_ms"] for d in left] == [0.0, 0.0]
        assert all("which had not answered 0.02 s later" in d.sentence for d in left)
        cancel, record = cancel_request()  # known stuck now: said at once
        await charge(hooks, record, cancel)
        assert "since an earlier cancel left" in sent_without_store(seen)[-1].sentence
    stuck.set()
    await all_answered(hooks)
    used = hooks.host.store.read().buckets["weight/60s"].used
    assert used - sum(hooks.lease.unspent().values()) == 3  # each charged once answered

    hooks.lease = None  # a healthy store: the kill's cancel still does not wait, says nothing
    reserved = hooks.host.store.read().buckets["weight/60s"].used  # the voided lease's too
    with reducing_risk():
        cancel, record = cancel_request()
        await charge(hooks, record, cancel)
    assert cancel.http == [record] and record.charge is None  # left before the answer
    await all_answered(hooks)
    await asyncio.sleep(CANCEL_PATIENCE_S * 2)
    assert len(sent_without_store(seen)) == 3
    used = hooks.host.store.read().buckets["weight/60s"].used
    assert used - sum(hooks.lease.unspent().values()) == reserved + 1  # charged once answered
    hooks.host.close()


class SlowStore(MemoryStore):
    """A healthy store under load: every transaction takes 5 ms."""

    def transact(self, fn: Any) -> Any:
        time.sleep(0.005)
        return super().transact(fn)


async def test_a_store_that_is_merely_slow_gets_each_cancel_its_patience() -> None:
    """5 ms a transaction, with another process's response queued ahead of each cancel:
    every cancel waits for its answer (no cancel is sent without the store)."""
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    exchange = SimpleNamespace(options={})
    host = HostBudget(
        store=SlowStore("hooks-slow-store:1"), policy=Policy(), bus=bus, exchange=exchange,
        key_id="k",
    )  # fmt: skip
    rules = RulesKeeper(host, 60.0, None, exchange)
    rules.install(RuleSet((Rule("weight", 60, 2400), Rule("orders", 10, 300)), "exchange"))
    hooks = HttpBudget(host=host, every=rules.every, interrupter=Interrupter())
    for _ in range(10):
        hooks.lease = None  # void: each cancel goes to the store
        host.post(lambda st: None)  # a response's update queued ahead of it
        cancel, record = cancel_request()
        await charge(hooks, record, cancel)
        assert record.charge is not None  # charged by the store's answer, before it left
    assert sent_without_store(seen) == []
    host.close()


async def test_posting_holds_until_every_posted_transaction_has_run() -> None:
    """``posting`` (what the layer asks after every request, without a lock) is True from
    the moment a transaction is posted until it, and every one posted before it, has run;
    ``settled()`` then waits for exactly that."""
    hooks, _ = process("posting-host")
    host = hooks.host
    release = threading.Event()
    ran: list[int] = []

    def held(st: Any) -> None:  # the store thread waits here until released
        release.wait(5)
        ran.append(1)

    assert not host.posting
    host.post(held)
    host.post(lambda st: ran.append(2))
    assert host.posting and ran == []
    release.set()
    await host.settled()
    assert ran == [1, 2] and not host.posting
    host.post(lambda st: ran.append(3))
    await host.settled()
    assert ran == [1, 2, 3] and not host.posting
    host.close()
