"""`perpbot kill` never calls a kill done while the exchange still holds the orders.

The simulator's fault plan answers every cancel (and, for flatten, every new order) with a
5xx; `perpbot kill` must exit non-zero and name each order left open on each symbol (and
the positions left), for a bot acknowledging through its ack file and for `--direct`. The
simulator's own open orders and positions are the truth.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import ccxt
import pytest

from perpbot.client.loopback import configure_loopback
from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    open_orders_of,
    orders_of,
    position_of,
    quiet_market,
    sim_env,
    start_bot,
    wait_until,
    write_strategy,
)

CANCELS_FAIL = {
    "errors": {
        "rate": 1.0,
        "statuses": [503],
        "paths": ["/fapi/v1/order", "/fapi/v1/allOpenOrders", "/fapi/v1/batchOrders"],
        "methods": ["DELETE"],
    }
}
CANCELS_AND_ORDERS_FAIL = {
    "errors": {
        "rate": 1.0,
        "statuses": [502, 503],
        "paths": ["/fapi/v1/order", "/fapi/v1/allOpenOrders", "/fapi/v1/batchOrders"],
    }
}


def _named(stdout: str, orders: list[dict[str, Any]]) -> None:
    """Every open order is named with its symbol on the 'left open' line."""
    (line,) = [ln for ln in stdout.splitlines() if "order(s) left open: " in ln][:1]
    for o in orders:
        assert o["clientOrderId"] in line, (o["clientOrderId"], line)
    symbols = {o["symbol"] for o in orders}
    for s in symbols:
        assert f"{s[:-4]}/USDT:USDT " in line


def _bot_with_orders(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot], open_orders: int, **strategy: Any
) -> tuple[Any, tuple[str, str], Bot]:
    """A `perpbot run` of the hang strategy on a quiet simulator, once its orders rest."""
    sim, creds, toml = bot_files(**strategy)
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == open_orders, timeout=30)
    return sim, creds, bot


def test_acked_kill_with_every_cancel_failing_exits_1_naming_the_orders_left(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, bot = _bot_with_orders(
        bot_files, tmp_path, bots, 4, params={"mode": "idle", "orders_per_symbol": 2}
    )
    sim.set_faults(CANCELS_FAIL)

    started = time.time()
    result = run_cli("kill", "--reason", "cancels fail", "--wait", "30")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    left = open_orders_of(sim.state(), creds[0])
    assert len(left) == 4  # the truth: the exchange still holds all of them
    _named(result.stdout, left)
    assert "acknowledged level cancel" in result.stdout
    # the exchange's countdown (armed by the bot, refreshing stopped when it acted) is named
    # with when it fires: at most deadman_countdown_s (30 s in hang.toml) after the kill
    m = re.search(
        r"dead-man countdown on (.+?) cancels the orders left there by (\S+) UTC", result.stdout
    )
    assert m is not None, result.stdout
    assert m.group(1) == "BTC/USDT:USDT, ETH/USDT:USDT"
    fires = time.strptime(m.group(2), "%H:%M:%S")
    fires_s = fires.tm_hour * 3600 + fires.tm_min * 60 + fires.tm_sec
    kill_s = int(started) % 86400
    assert 0 <= (fires_s - kill_s) % 86400 <= 32
    # one line on stderr names the orders too
    (err,) = result.stderr.strip().splitlines()
    assert "4 order(s) left open: " in err
    sim.set_faults({})
    bot.finish(60)


def test_flatten_with_cancels_and_orders_failing_names_orders_and_positions(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, bot = _bot_with_orders(
        bot_files, tmp_path, bots, 1,
        params={"mode": "idle", "orders_per_symbol": 1, "open_position": 0.01},
        strategy={"symbols": ["BTC/USDT:USDT"]},
        kill={"flatten_timeout_s": 2.0},
    )  # fmt: skip
    sim.set_faults(CANCELS_AND_ORDERS_FAIL)

    result = run_cli("kill", "--level", "flatten", "--wait", "40")
    assert result.returncode == 1, result.stdout + result.stderr
    state = sim.state()
    assert position_of(state, creds[0], "BTCUSDT") == pytest.approx(0.01)
    _named(result.stdout, open_orders_of(state, creds[0]))
    assert "positions left open: BTC/USDT:USDT +0.01" in result.stdout
    assert "positions left open: BTC/USDT:USDT +0.01" in result.stderr
    sim.set_faults({})
    bot.finish(60)


def _resting_orders(sim: Any) -> tuple[str, str]:
    key, secret = sim.create_account()
    ex = ccxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    ex.load_markets()
    # 4 % from the market: inside PERCENT_PRICE (+-5 %), and they rest in a quiet market
    ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.002, 57600.0, {"newClientOrderId": "hb1"})
    ex.create_order("ETH/USDT:USDT", "limit", "sell", 0.05, 3120.0, {"newClientOrderId": "he1"})
    ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    return key, secret


def test_direct_retries_cancels_until_its_deadline_then_names_what_is_left(
    sim_factory: Any,
) -> None:
    sim = sim_factory(market=quiet_market())
    key, secret = _resting_orders(sim)
    sim.set_faults(CANCELS_FAIL)
    before = sim.state()["counters"]["injected_errors"]

    result = run_cli(
        "kill", "--direct", "--url", sim.base_url, "--wait", "0", env=sim_env((key, secret))
    )
    assert result.returncode == 1, result.stdout + result.stderr
    state = sim.state()
    left = open_orders_of(state, key)
    assert {o["clientOrderId"] for o in left} == {"hb1", "he1"}
    _named(result.stdout, left)
    assert (
        "BTC/USDT:USDT, ETH/USDT:USDT: if a bot armed the exchange's dead-man countdown there"
        in result.stdout
    )
    # it retried: many more cancel attempts reached the exchange than one per symbol
    assert state["counters"]["injected_errors"] - before > 6
    assert "--direct: 2 order(s) left open: BTC/USDT:USDT hb1; ETH/USDT:USDT he1" in result.stderr


DELETES = {"paths": CANCELS_FAIL["errors"]["paths"], "methods": ["DELETE"]}


@pytest.mark.parametrize(
    ("plan", "counter"),
    [
        ({"errors": {**CANCELS_FAIL["errors"], "count": 8}}, "injected_errors"),
        ({"drop": {**DELETES, "rate": 1.0, "count": 8}}, "dropped"),  # no response at all
    ],
)
def test_direct_gets_through_a_burst_of_5xx_or_dropped_connections(
    sim_factory: Any, plan: dict[str, Any], counter: str
) -> None:
    sim = sim_factory(market=quiet_market())
    key, secret = _resting_orders(sim)
    sim.set_faults(plan)

    result = run_cli(
        "kill", "--level", "flatten", "--direct", "--url", sim.base_url, "--wait", "0",
        env=sim_env((key, secret)),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    state = sim.state()
    assert open_orders_of(state, key) == []
    assert position_of(state, key, "BTCUSDT") == 0.0
    assert state["counters"][counter] == 8
    assert "left open" not in result.stdout


def test_direct_next_to_a_bot_says_when_the_bots_countdown_fires(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, bot = _bot_with_orders(
        bot_files, tmp_path, bots, 1,
        params={"mode": "idle", "orders_per_symbol": 1},
        strategy={"symbols": ["BTC/USDT:USDT"]},
    )  # fmt: skip
    sim.set_faults(CANCELS_FAIL)

    result = run_cli("kill", "--direct", "--url", sim.base_url, "--wait", "30", env=sim_env(creds))
    assert result.returncode == 1, result.stdout + result.stderr
    (left,) = open_orders_of(sim.state(), creds[0])
    assert f"direct on {sim.base_url}: 1 order(s) left open: BTC/USDT:USDT " in result.stdout
    assert left["clientOrderId"] in result.stdout
    assert re.search(
        rf"direct on {re.escape(sim.base_url)}: as bot \S+ acknowledged, the exchange's "
        r"dead-man countdown on BTC/USDT:USDT cancels the orders left there by \S+ UTC",
        result.stdout,
    ), result.stdout
    sim.set_faults({})
    bot.finish(60)


def test_the_countdown_the_kill_announces_is_left_armed_and_fires(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, bot = _bot_with_orders(
        bot_files, tmp_path, bots, 2,
        params={"mode": "idle", "orders_per_symbol": 2},
        strategy={"symbols": ["BTC/USDT:USDT"]},
        kill={"deadman_countdown_s": 14.0},  # longer than the kill's 10 s of retries
    )  # fmt: skip
    sim.set_faults(CANCELS_FAIL)  # the countdown itself (a POST) still reaches the exchange

    result = run_cli("kill", "--reason", "cancels fail", "--wait", "30")
    assert result.returncode == 1, result.stdout + result.stderr
    m = re.search(r"dead-man countdown on BTC/USDT:USDT cancels the orders left there by "
                  r"(\d\d):(\d\d):(\d\d) UTC", result.stdout)  # fmt: skip
    assert m is not None, result.stdout
    code, out, err = bot.finish(60)  # its clean stop must not disarm that countdown
    assert code == 4, err
    assert "KILL_DEADMAN_KEPT" in out
    # the exchange, not the bot, cancels them: all at once, no later than announced
    wait_until(lambda: open_orders_of(sim.state(), creds[0]) == [], timeout=20)
    cancels = {o["cancelTime"] for o in orders_of(sim.state(), creds[0])}
    assert len(cancels) == 1
    fired = time.gmtime(cancels.pop() / 1000)
    fired_s = fired.tm_hour * 3600 + fired.tm_min * 60 + fired.tm_sec
    announced_s = int(m.group(1)) * 3600 + int(m.group(2)) * 60 + int(m.group(3))
    assert (announced_s - fired_s) % 86400 <= 5  # fired at or (up to 5 s) before the time


def test_direct_flatten_with_everything_failing_names_orders_and_positions(
    sim_factory: Any, tmp_path: Path
) -> None:
    sim = sim_factory(market=quiet_market())
    key, secret = _resting_orders(sim)
    toml = write_strategy(
        tmp_path, sim.base_url, strategy={"symbols": ["BTC/USDT:USDT"]},
        kill={"flatten_timeout_s": 2.0},
    )  # fmt: skip
    sim.set_faults(CANCELS_AND_ORDERS_FAIL)

    result = run_cli(
        "kill", "--level", "flatten", "--direct", "--strategy", str(toml), "--wait", "0",
        env=sim_env((key, secret)),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    state = sim.state()
    assert position_of(state, key, "BTCUSDT") == pytest.approx(0.01)
    assert [o["clientOrderId"] for o in open_orders_of(state, key) if o["symbol"] == "BTCUSDT"] == [
        "hb1"
    ]
    (err,) = [ln for ln in result.stderr.splitlines() if ln.startswith("perpbot: error:")]
    assert "--direct: 1 order(s) left open: BTC/USDT:USDT hb1" in err
    assert "--direct: positions left open: BTC/USDT:USDT +0.01" in err
