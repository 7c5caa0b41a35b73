"""Several perpbot processes, one key, one host: one budget (SQLite here, Redis across hosts)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from perpbot.client.ratelimit.loadtest import LoadRun, run_workers, worker_command

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
            from perpbot.client.ratelimit import budget

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
