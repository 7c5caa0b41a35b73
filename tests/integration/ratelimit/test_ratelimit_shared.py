"""Several perpbot processes, one key, one host: one budget (SQLite here, Redis across hosts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.support.loadtest import LoadRun, run_workers, worker_command

WINDOW_S = 1
BUDGET = 150
WINDOWS = 2


def three_workers(sim_factory: Any, home: Path, *extra: str) -> tuple[Any, LoadRun]:
    sim = sim_factory(limits={"weight_per_window": BUDGET, "weight_window_s": WINDOW_S})
    key, secret = sim.create_account()
    seconds = (WINDOWS + 1) * WINDOW_S - 0.1
    commands = [
        worker_command(
            sim.base_url, seconds, "--concurrency", "6", "--orders", "--refresh", "1",
            "--tag", f"p{i}", "--seed", str(i + 1), *extra,
        )
        for i in range(3)
    ]  # fmt: skip
    env = {
        "PERPBOT_HOME": str(home),
        "PERPBOT_SIM_API_KEY": key,
        "PERPBOT_SIM_API_SECRET": secret,
    }
    return sim, run_workers(sim, commands, env=env, seconds=seconds, window_s=WINDOW_S)


def assert_one_budget(sim: Any, run: LoadRun) -> None:
    counters = sim.state()["counters"]
    assert counters["http_429"] == 0 and counters["http_418"] == 0, counters
    assert len(run.windows) >= WINDOWS
    assert all(peak <= BUDGET for peak in run.windows.values()), run.windows
    # together they use the budget (each alone would have assumed it owned all of it)
    assert sum(run.windows.values()) >= 0.5 * BUDGET * len(run.windows), run.windows
    for worker in run.workers:
        assert worker["ok"] > 0 and worker["errors"] == {}, worker
        assert worker["http_429"] == 0 and worker["http_418"] == 0


def test_three_processes_sharing_a_key_stay_inside_one_budget(
    sim_factory: Any, state_home: Path
) -> None:
    sim, run = three_workers(sim_factory, state_home)
    assert_one_budget(sim, run)
    files = list((state_home / "limits").glob("*.sqlite"))
    assert [f.name for f in files] == [f"127.0.0.1_{sim.base_url.rsplit(':', 1)[1]}.sqlite"]


def test_three_processes_share_one_budget_through_redis(
    sim_factory: Any, state_home: Path, redis_url: str
) -> None:
    import redis

    sim, run = three_workers(sim_factory, state_home, "--store", redis_url)
    assert_one_budget(sim, run)
    host = sim.base_url.split("://", 1)[1]
    doc = json.loads(redis.Redis.from_url(redis_url).get(f"perpbot:limits:{host}"))
    assert doc["buckets"]["weight/1s"]["nominal"] == BUDGET
    assert not list((state_home / "limits").glob("*.sqlite"))  # nothing local


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_429_seen_by_one_process_holds_the_others(
    sim_factory: Any, open_guarded: Any, store: str, request: pytest.FixtureRequest
) -> None:
    """Retry-After is per IP: one process's pushback blocks every process of the host."""
    import asyncio

    spec = request.getfixturevalue("redis_url") if store == "redis" else "sqlite"
    sim = sim_factory(limits={"weight_per_window": 2400, "weight_window_s": 60})

    async def go() -> tuple[float, float]:
        async with (
            open_guarded(sim, limits={"store": spec}) as (a, _),
            open_guarded(sim, limits={"store": spec}) as (b, _),
        ):
            limiter_a = a.pipeline.layer("ratelimit")
            from perpbot.ratelimit import budget

            now = limiter_a.now()
            policy = limiter_a.host.policy
            limiter_a.host.txn(
                lambda st: budget.pushback(
                    st, {"weight"}, limiter_a.key_id, 1.5, "GET /x", now, policy
                )
            )
            limiter_b = b.pipeline.layer("ratelimit")
            snap = limiter_b.snapshot()
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            await b.fetch_ticker("BTC/USDT:USDT")
            return snap["blocked_for_s"], loop.time() - t0

    blocked_for, waited = asyncio.run(go())
    assert 1.0 < blocked_for <= 1.5
    assert waited >= 1.0


def test_through_redis_a_block_reaches_every_process_without_a_round_trip_per_request(
    redis_url: str,
) -> None:
    """The block time is pushed (pub/sub) to every store sharing the host, so a request
    asks Redis nothing; the key itself is still read every second and on (re)subscribing."""
    import time

    from perpbot.ratelimit.stores import RedisStore

    one, two = RedisStore(redis_url, "h:1"), RedisStore(redis_url, "h:1")
    try:
        deadline = time.monotonic() + 5
        while not (one._live and two._live) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert two.blocked_until() == 0.0  # read from the key once subscribed
        reads = 0
        real_get = two._client.get

        def counting_get(key: str) -> object:
            nonlocal reads
            reads += 1
            return real_get(key)

        two._client.get = counting_get
        one.transact(lambda st: setattr(st, "blocked_until", 1234.5))
        assert one.blocked_until() == 1234.5  # its own write, at once
        deadline = time.monotonic() + 2
        while two.blocked_until() != 1234.5:  # the other one hears of it
            assert time.monotonic() < deadline, "the block never reached the other store"
            time.sleep(0.001)
        for _ in range(1000):
            assert two.blocked_until() == 1234.5
        assert reads <= 1  # (the once-a-second re-read of the key, at most)
        one.transact(lambda st: setattr(st, "banned_until", 2000.25))
        deadline = time.monotonic() + 2
        while two.blocked_until() != 2000.25:
            assert time.monotonic() < deadline
            time.sleep(0.001)
    finally:
        one.close()
        two.close()
    assert not one._listener.is_alive() and not two._listener.is_alive()
