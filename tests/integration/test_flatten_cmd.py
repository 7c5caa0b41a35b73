"""`perpbot flatten`: positions closed by an exit policy from the command line, no kill switch.

The simulator's own state is the truth: positions flat, every order the command placed
reduce-only with a `pbk-flatten-` id, resting orders untouched unless --cancel-orders, and no
sentinel written.
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path
from typing import Any

import ccxt
import pytest

from perpbot.client.loopback import configure_loopback
from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    open_orders_of,
    orders_of,
    position_of,
    quiet_market,
    sim_env,
    write_strategy,
)


def _account_with_positions(sim: Any) -> tuple[str, str]:
    creds = sim.create_account()
    ex = ccxt.binanceusdm({"apiKey": creds[0], "secret": creds[1], "enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    ex.load_markets()
    ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    ex.create_order("ETH/USDT:USDT", "market", "sell", 0.05)
    mark = float(ex.fetch_ticker("BTC/USDT:USDT")["last"])
    ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.002, round(mark * 0.97, 1))
    return creds


@pytest.mark.parametrize("policy", ["slices", "adaptive"])
def test_flatten_closes_every_position_reduce_only(
    sim_factory: Any, state_home: Path, policy: str
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = _account_with_positions(sim)
    # the setup's orders, told apart by id (the simulator's clock need not match ours)
    before = {o["orderId"] for o in orders_of(sim.state(), creds[0])}

    result = run_cli(
        "flatten", "--url", sim.base_url, "--policy", policy, "--timeout", "60", "--json",
        env=sim_env(creds),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["symbols"] == ["BTC/USDT:USDT", "ETH/USDT:USDT"]
    assert report["policy"] == policy
    assert {c["symbol"]: c["to"] for c in report["closed"]} == {
        "BTC/USDT:USDT": 0.0,
        "ETH/USDT:USDT": 0.0,
    }

    state = sim.state()
    assert position_of(state, creds[0], "BTCUSDT") == 0.0
    assert position_of(state, creds[0], "ETHUSDT") == 0.0
    placed = [o for o in orders_of(state, creds[0]) if o["orderId"] not in before]
    assert placed and all(o["reduceOnly"] for o in placed)
    assert all(o["clientOrderId"].startswith("pbk-flatten-") for o in placed)
    assert len(open_orders_of(state, creds[0])) == 1  # the resting bid stays
    assert not (state_home / "KILL").exists()  # no kill switch


def test_flatten_can_cancel_the_orders_first_and_says_what_it_did(sim_factory: Any) -> None:
    sim = sim_factory(market=quiet_market())
    creds = _account_with_positions(sim)
    result = run_cli(
        "flatten", "--url", sim.base_url, "--policy", "market", "--cancel-orders",
        "--symbol", "BTC/USDT:USDT", env=sim_env(creds),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cancelled 1 order(s)" in result.stdout
    assert "BTC/USDT:USDT +0.01 -> +0 with market" in result.stdout
    state = sim.state()
    assert open_orders_of(state, creds[0]) == []
    assert position_of(state, creds[0], "BTCUSDT") == 0.0
    assert position_of(state, creds[0], "ETHUSDT") == -0.05  # not asked for


def test_flatten_refuses_while_a_bot_of_that_strategy_runs(
    sim_factory: Any, tmp_path: Path, state_home: Path
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = _account_with_positions(sim)
    toml = write_strategy(tmp_path, sim.base_url)
    name = tomllib.loads(toml.read_text())["strategy"]["name"]
    bots = state_home / "bots"
    bots.mkdir()
    doc = {"state": "running", "pid": os.getpid(), "strategy": name, "run_id": "r-live"}
    (bots / "r-live.json").write_text(json.dumps(doc))

    result = run_cli("flatten", "--strategy", str(toml), env=sim_env(creds))
    assert result.returncode == 2
    assert "run r-live" in result.stderr and "perpbot kill --level flatten" in result.stderr
    assert "Traceback" not in result.stderr
    assert position_of(sim.state(), creds[0], "BTCUSDT") == 0.01  # nothing was sent


def test_flatten_bad_input_is_one_line(sim_factory: Any) -> None:
    result = run_cli("flatten", "--url", "http://127.0.0.1:9", "--policy", "dump")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--policy: got 'dump'" in result.stderr
    result = run_cli("flatten", "--url", "http://127.0.0.1:9", "--timeout", "nan")
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_kill_direct_flatten_uses_the_configured_exit_policy(
    sim_factory: Any, tmp_path: Path
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = _account_with_positions(sim)
    toml = write_strategy(tmp_path, sim.base_url, kill={"flatten_policy": "slices"})
    result = run_cli(
        "kill", "--level", "flatten", "--direct", "--strategy", str(toml), "--wait", "0",
        "--json", env=sim_env(creds),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    state = sim.state()
    assert position_of(state, creds[0], "BTCUSDT") == 0.0
    doc = json.loads(result.stdout)
    closed = doc["direct"]["closed"] if "direct" in doc else doc["closed"]
    assert {c["policy"] for c in closed} == {"slices"}
