"""A budget store held by another process never holds up a kill.

Another process takes the SQLite budget store's write lock and keeps it for 5 s while a
real `perpbot run` bot has orders resting on the simulator; `perpbot kill` must still get
every order cancelled at the simulator (its own cancel timestamps are the judge) well
before the lock is released: the store's transactions run off the event loop that runs
the kill watchdog, and a cancel does not wait for a store that does not answer.

The kill's cancels do not wait for the store at all, not even the first batch on a bot
whose store looked idle: each cancel's RATE_STORE_SLOW_CANCEL_SENT says it waited 0 ms.
A kill scoped to the run sends one cancel per order: each reaches the simulator while the
lock is held.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from bench.support.storelock import hold_write_lock, store_path
from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    open_orders_of,
    orders_of,
    quiet_market,
    start_bot,
    wait_until,
    write_strategy,
)

LOCK_S = 5.0
WINDOW_S = 1  # one-second weight windows: the bot's leases are void once the lock is held


def test_kill_cancels_while_another_process_holds_the_store_write_lock(
    sim_factory: Any, tmp_path: Path, state_home: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(
        market=quiet_market(), limits={"weight_per_window": 2400, "weight_window_s": WINDOW_S}
    )
    creds = sim.create_account()
    toml = write_strategy(tmp_path, sim.base_url, params={"mode": "sleep", "orders_per_symbol": 6})
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 12, timeout=30)
    store = store_path(state_home, sim.base_url)
    assert store.exists()

    holder, locked_at = hold_write_lock(store, LOCK_S)
    try:
        assert holder.stdout is not None
        # into the next weight window: whatever the bot leased before the lock is void, so
        # its cancels need the (locked) store
        time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.05)
        killed_at = time.time()
        result = run_cli("kill", "--reason", "store locked", "--wait", "0")
        assert result.returncode == 0, result.stderr
        wait_until(lambda: open_orders_of(sim.state(), creds[0]) == [], timeout=LOCK_S)
        gone_at = time.time()
        assert holder.poll() is None  # the lock is still held
    finally:
        holder.wait(LOCK_S + 10)
    release_line = holder.stdout.readline().split()
    assert release_line[0] == "RELEASED"
    orders = orders_of(sim.state(), creds[0])
    assert len(orders) == 12 and all(o["status"] == "CANCELED" for o in orders)
    last_cancel = max(o["cancelTime"] for o in orders) / 1000.0
    assert last_cancel < float(release_line[1]) - 2.0  # well before the lock was released
    assert last_cancel - killed_at < 2.0 and gone_at - killed_at < 2.5
    assert last_cancel > locked_at

    code, out, err = bot.finish()
    assert code == 4, err
    assert "Traceback" not in out + err
    # the kill's cancels needed the locked store (the leases were void) and none waited for
    # it, not even the first batch, before anything said the store was stuck
    [run_dir] = list((state_home / "runs").iterdir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    left = [e for e in events if e.get("code") == "RATE_STORE_SLOW_CANCEL_SENT"]
    assert left and {e["data"]["waited_ms"] for e in left} == {0.0}
    # said after leaving, or at once when the store was known stuck (a dead-man refresh may
    # have met the lock first), never after waiting the patience
    assert not [e for e in left if "has not answered for" in e["sentence"]]


def requests_seen(sim: Any) -> int:
    return int(sim.state()["counters"]["requests"])


def test_none_of_a_kills_cancels_waits_for_a_store_known_stuck(
    sim_factory: Any, tmp_path: Path, state_home: Path, bots: list[Bot]
) -> None:
    """A bot polling over REST (no streams) is already stuck on the locked store when the
    kill comes: none of the kill's 12 cancels waits the store's patience."""
    sim = sim_factory(
        market=quiet_market(), limits={"weight_per_window": 2400, "weight_window_s": WINDOW_S}
    )
    creds = sim.create_account()
    toml = write_strategy(
        tmp_path,
        sim.base_url,
        params={"mode": "idle", "orders_per_symbol": 6},
        exchange={"streams": False},  # a REST reconcile every 0.2 s tick
    )
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 12, timeout=30)

    holder, locked_at = hold_write_lock(store_path(state_home, sim.base_url), LOCK_S)
    try:
        assert holder.stdout is not None
        time.sleep(WINDOW_S - time.time() % WINDOW_S + 0.05)  # the bot's leases are void
        # the bot's requests stop reaching the simulator: its store thread is stuck on the
        # lock (no request for 0.5 s, more than two ticks)
        seen: list[int] = []

        def quiet() -> bool:
            seen.append(requests_seen(sim))
            return len(seen) > 10 and seen[-1] == seen[-11]

        wait_until(quiet, timeout=3)
        # one cancel per order: the switch covers this run only
        result = run_cli("kill", "--run", "hang", "--reason", "store locked", "--wait", "0")
        assert result.returncode == 0, result.stderr
        wait_until(lambda: open_orders_of(sim.state(), creds[0]) == [], timeout=LOCK_S)
        assert holder.poll() is None  # every order is gone while the lock is still held
    finally:
        holder.wait(LOCK_S + 10)
    code, out, err = bot.finish()
    assert code == 4, err
    assert "Traceback" not in out + err

    orders = orders_of(sim.state(), creds[0])
    assert len(orders) == 12 and all(o["status"] == "CANCELED" for o in orders)
    assert min(o["cancelTime"] for o in orders) / 1000.0 > locked_at
    [run_dir] = list((state_home / "runs").iterdir())
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    left = [e for e in events if e.get("code") == "RATE_STORE_SLOW_CANCEL_SENT"]
    # every cancel needed the locked store (no lease stood), and none waited for its answer
    assert len(left) == 12 and {e["data"]["request"] for e in left} == {"DELETE /fapi/v1/order"}
    assert [e["data"]["waited_ms"] for e in left] == [0.0] * 12
    assert "which has been on one transaction for" in left[0]["sentence"]
