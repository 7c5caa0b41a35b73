"""The exchange pushes back or changes its limits: perpbot follows, waits, explains."""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from bench.support.loadtest import WindowSampler
from bench.support.workload import Ops, drive
from perpbot.client.waits import WaitInterrupted
from perpbot.errors import RuntimeFailure

WINDOW_S = 1
SYMBOL = "BTC/USDT:USDT"


def set_limits(sim: Any, **limits: int) -> None:
    req = urllib.request.Request(
        sim.base_url + "/__sim/limits",
        data=json.dumps(limits).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200


def window_usage(sim: Any) -> tuple[float, int]:
    """(window start in s, weight used) as the simulator counts it for our IP."""
    ips = list(sim.server.engine.limits.ips.values())
    return (ips[0].weight.start / 1000, ips[0].weight.used) if ips else (0.0, 0)


async def until_next_window() -> None:
    await asyncio.sleep(WINDOW_S - time.time() % WINDOW_S + 0.05)


async def reads(client: Any, seconds: float, concurrency: int) -> Any:
    ticker = await client.fetch_ticker(SYMBOL)
    ops = Ops(client, False, float(ticker["last"]))
    return await drive(ops, seconds, concurrency, with_orders=False, seed=5, tag="a")


async def test_a_published_budget_cut_is_followed_within_one_window(
    sim_factory: Any, open_guarded: Any
) -> None:
    sim = sim_factory(limits={"weight_per_window": 200, "weight_window_s": WINDOW_S})
    cut: dict[str, float] = {}

    async def cut_when_saturated() -> None:
        """Cut to 100 once the window's budget is spent (nothing of ours in flight)."""
        await until_next_window()
        await asyncio.sleep(WINDOW_S)  # let one whole window run at the old budget
        last, steady_since = -1, time.monotonic()
        while True:
            _, used = window_usage(sim)
            if used != last:
                last, steady_since = used, time.monotonic()
            # reads stop at the ordinary ceiling: 200 less the 5 % margin less the 10 % the
            # cancels' reserve keeps = 171
            elif used >= 165 and time.monotonic() - steady_since > 0.1:
                await asyncio.to_thread(set_limits, sim, weight_per_window=100)
                cut["at"] = time.time()
                return
            await asyncio.sleep(0.005)

    async with open_guarded(sim, limits={"refresh_s": WINDOW_S}) as (client, rec):
        with WindowSampler(sim) as sampler:
            await asyncio.gather(reads(client, 6 * WINDOW_S, 8), cut_when_saturated())
    counters = sim.state()["counters"]
    assert counters["http_429"] == 0 and counters["http_418"] == 0
    lowered = rec.of("RATE_LIMIT_LOWERED")
    assert len(lowered) == 1 and lowered[0].action == "tighten"
    assert "lowered the weight limit 200 -> 100 per 1s" in lowered[0].sentence
    # said in the period after the cut's: its first request re-reads the rules (the
    # re-read's own round trip is inside that period, however loaded the machine is)
    next_period = math.floor(cut["at"] / WINDOW_S) * WINDOW_S + WINDOW_S
    assert cut["at"] < lowered[0].ts < next_period + WINDOW_S
    after = {w: peak for w, peak in sampler.peak.items() if w / 1000 > cut["at"]}
    assert len(after) >= 2 and all(peak <= 100 for peak in after.values()), after


async def test_a_429_storm_is_honoured_no_request_inside_retry_after_no_418(
    sim_factory: Any, open_guarded: Any
) -> None:
    """The exchange cuts its limit below our usage, window after window.

    The first cut meets a lone sequential reader (a surprise 429 with other requests in
    flight would earn those a 418 in the simulator, which bans any request arriving after a
    429); after that a crowd of readers joins, and the limiter's probing (one request at a
    time above what the exchange has accepted since the pushback) keeps them from landing
    inside a Retry-After period.
    """
    sim = sim_factory(limits={"weight_per_window": 400, "weight_window_s": WINDOW_S})
    stats = sim.server.stats
    # when the window's usage reaches X, cut the limit to Y (< X: the next request meets it);
    # X stays well under our cut budget so the cut lands while we are still sending
    cuts = [(100, 80), (40, 35), (8, 6)]

    progress: list[str] = []  # what the storm did, for a failure's message

    async def storm() -> None:
        for i, (reach, limit) in enumerate(cuts):
            progress.append(f"cut {i + 1}: waiting for usage {reach}")
            seen_429, window = stats.http_429, window_usage(sim)[0]
            while True:
                start, used = window_usage(sim)
                if used >= reach and (i == 0 or start > window):
                    await asyncio.to_thread(set_limits, sim, weight_per_window=limit)
                    progress.append(f"cut {i + 1}: limit {limit} at usage {used}")
                    break
                await asyncio.sleep(0.002)
            while stats.http_429 == seen_429:  # the next request meets the cut
                await asyncio.sleep(0.002)

    # the rules are re-read after each 429 only (not every window: a re-read at the turn
    # of a window could learn a cut before any request met it, and the storm would wait
    # for a 429 that never comes)
    limits = {"refresh_s": 60, "recover_after_s": 60, "tighten_factor": 0.8}
    async with open_guarded(sim, limits=limits) as (client, rec):
        await until_next_window()
        storming = asyncio.ensure_future(storm())
        # the readers go on until a window after the last cut met its 429, however slow the
        # machine, so that every Retry-After period is put to the test (60 s at most: after
        # a pushback the limiter probes one request at a time, and a loaded machine can take
        # many windows to bring a window's usage up to the next cut's level)
        lone = asyncio.ensure_future(reads(client, 60 * WINDOW_S, 1))
        # the crowd joins once the client has taken in the first 429 (the simulator's own
        # count goes up as it answers, before the answer has been read)
        while not rec.of("RATE_TIGHTEN_429"):
            await asyncio.sleep(0.002)
        crowd = asyncio.ensure_future(reads(client, 60 * WINDOW_S, 4))

        def stalled(what: str) -> AssertionError:  # where it stalled (CI-like runs, twice)
            readers = [r.exception() if r.done() else "running" for r in (lone, crowd)]
            limiter = client.pipeline.layer("ratelimit").snapshot()
            return AssertionError(
                f"{what}: {progress}; window (start, usage) now {window_usage(sim)}; readers "
                f"(lone, crowd): {readers}; simulator {sim.state()['counters']}; "
                f"limiter {limiter}; decisions {[d.code for d in rec.decisions][-20:]}"
            )

        try:
            await asyncio.wait_for(storming, timeout=60)
        except TimeoutError:
            raise stalled("the storm stalled") from None

        async def the_last_cut_is_read() -> None:  # once its Retry-After has passed
            while len(rec.of("RATE_LIMIT_LOWERED")) < len(cuts):
                await asyncio.sleep(0.01)

        try:
            await asyncio.wait_for(the_last_cut_is_read(), timeout=30)
        except TimeoutError:
            raise stalled("the last cut was not read") from None
        await asyncio.sleep(WINDOW_S)
        for readers in (lone, crowd):
            readers.cancel()  # (requests still held back by the limiter never left)
        await asyncio.gather(lone, crowd, return_exceptions=True)
    counters = sim.state()["counters"]
    assert counters["http_429"] == 3, counters
    assert counters["http_418"] == 0, counters
    # from the client's own record: nothing left inside any Retry-After period (a request
    # that never had an answer was cut short while held back: it never left)
    calls = [c for c in rec.calls if c.status is not None]
    pushbacks = [c for c in calls if c.status == 429]
    assert len(pushbacks) == 3
    for pb in pushbacks:
        until = pb.mono + float(pb.rate_headers["Retry-After"])
        inside = [
            c
            for c in calls
            if c is not pb and pb.mono < c.mono - c.latency_ms / 1000 < until - 0.01
        ]
        assert inside == [], (pb, inside)
    tightened = rec.of("RATE_TIGHTEN_429")
    assert len(tightened) == 3
    assert "weight budget cut" in tightened[0].sentence
    assert "after 429 with Retry-After" in tightened[0].sentence
    factors = [d.data["factor"] for d in tightened]
    assert factors == [0.8, 0.64, 0.512]
    assert len(rec.of("RATE_LIMIT_LOWERED")) == 3


async def test_a_418_ban_stops_requests_until_it_ends(sim_factory: Any, open_guarded: Any) -> None:
    limits = {"weight_per_window": 20, "weight_window_s": WINDOW_S, "ban_base_s": 2}
    sim = sim_factory(limits=limits)
    async with open_guarded(sim, limits={"refresh_s": 60}) as (client, rec):
        await until_next_window()
        depth = f"{sim.base_url}/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
        for _ in range(5):  # a careless client on the same IP: 20, 429 x3, then banned
            try:
                urllib.request.urlopen(depth).close()
            except urllib.error.HTTPError as exc:
                exc.close()
        t0 = time.monotonic()
        ticker = await client.fetch_ticker(SYMBOL)  # meets the ban once, then waits it out
        assert ticker["last"] > 0
        assert time.monotonic() - t0 >= 1.0
    counters = sim.state()["counters"]
    assert counters["http_418"] == 2, counters  # the careless client's, and perpbot's first
    ban = rec.of("RATE_BANNED_418")
    assert len(ban) == 1 and ban[0].action == "ban" and ban[0].layer == "ratelimit"
    assert ban[0].data["retry_after"] >= 1
    assert "banned this IP (418)" in ban[0].sentence
    held = rec.of("RATE_WAIT_BANNED")
    assert held and held[0].action == "wait" and "418 ban lasts until" in held[0].sentence


async def test_a_ban_in_the_shared_store_holds_every_client_of_the_host(
    sim_factory: Any, open_guarded: Any
) -> None:
    from perpbot.ratelimit import budget

    sim = sim_factory(limits={"weight_per_window": 20, "weight_window_s": WINDOW_S})
    async with (
        open_guarded(sim) as (client, _),
        open_guarded(sim, limits={"max_wait_s": 1}) as (other, rec),
    ):
        limiter = client.pipeline.layer("ratelimit")
        now = limiter.now()
        limiter.host.txn(lambda st: budget.banned(st, 30.0, "GET /fapi/v1/depth", now))
        sent = sim.state()["counters"]["requests"]
        with pytest.raises(RuntimeFailure) as err:
            await other.fetch_ticker(SYMBOL)
    assert err.value.code == "RATE_WAIT_TOO_LONG"
    assert "418 ban lasts until" in err.value.message and "max_wait_s = 1 s" in err.value.message
    assert sim.state()["counters"]["requests"] == sent  # nothing left
    assert rec.of("RATE_WAIT_BANNED") == []  # refused, not held


async def test_a_stop_cuts_a_rate_limit_wait_short(sim_factory: Any, open_guarded: Any) -> None:
    sim = sim_factory(limits={"weight_per_window": 20, "weight_window_s": WINDOW_S})
    async with open_guarded(sim, limits={"refresh_s": 60}) as (client, _):
        await until_next_window()
        await client.fetch_order_book(SYMBOL, 1000)  # weight 20: the window is spent
        held = asyncio.ensure_future(client.fetch_ticker(SYMBOL))
        await asyncio.sleep(0.1)
        assert not held.done()
        t0 = time.monotonic()
        client.setup.interrupter.interrupt("stop: test")
        with pytest.raises(WaitInterrupted):
            await held
        assert time.monotonic() - t0 < 0.5


async def test_a_request_waiting_for_budget_is_refused_once_its_client_closed(
    sim_factory: Any, open_guarded: Any
) -> None:
    """The layer looks at ``closed`` again after every wait: a request held back for budget
    while its client closes is refused as closed (not sent through a closed store)."""
    sim = sim_factory(limits={"weight_per_window": 20, "weight_window_s": WINDOW_S})
    async with open_guarded(sim, limits={"refresh_s": 60}) as (client, _):
        await until_next_window()
        await client.fetch_order_book(SYMBOL, 1000)  # weight 20: the window is spent
        held = asyncio.ensure_future(client.fetch_ticker(SYMBOL))
        await asyncio.sleep(0.1)
        assert not held.done()
        sent = sim.state()["counters"]["requests"]
        client.pipeline.layer("ratelimit").close()
        with pytest.raises(RuntimeFailure) as refused:
            await held
        assert refused.value.code == "CLIENT_CLOSED"
        assert sim.state()["counters"]["requests"] == sent  # it never left


async def test_a_closed_client_lets_go_of_its_budget_and_refuses_requests(
    sim: Any, open_guarded: Any
) -> None:
    async with open_guarded(sim) as (client, _):
        await client.fetch_ticker(SYMBOL)
        limiter = client.pipeline.layer("ratelimit")
        store = limiter.host.store
    assert store.closed  # the SQLite store's connections are gone
    assert limiter.snapshot()["weight_limit"] > 0  # as this process last saw it
    with pytest.raises(RuntimeFailure) as refused:
        await client.fetch_ticker(SYMBOL)
    assert refused.value.code == "CLIENT_CLOSED"
    assert "fetch_ticker BTC/USDT:USDT: this client is closed" in refused.value.message
