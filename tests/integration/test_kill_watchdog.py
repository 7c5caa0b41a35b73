"""`perpbot kill` against a running bot, whatever its strategy is doing.

A real `perpbot run` subprocess trades on a simulator in this process; `perpbot kill` is a
second subprocess; the simulator's order list (with its cancel timestamps) is the judge.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from perpbot.kill.acks import read_ack
from perpbot.kill.sentinel import read_sentinel
from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    account_of,
    now_ms,
    open_orders_of,
    orders_of,
    position_of,
    sim_env,
    start_bot,
    wait_until,
)


def _summary(state_home: Path, run_id: str) -> dict[str, Any]:
    return json.loads((state_home / "runs" / run_id / "summary.json").read_text())


@pytest.mark.parametrize("mode", ["sleep", "loop"])
def test_kill_cancels_every_order_of_a_hung_strategy(
    mode: str, bot_files: MakeBotFiles, tmp_path: Path, state_home: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(params={"mode": mode, "orders_per_symbol": 6})
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 12, timeout=30)

    killed_at = now_ms()
    result = run_cli("kill", "--reason", f"on_tick {mode}s forever", "--wait", "15")
    assert result.returncode == 0, result.stderr
    assert "acknowledged level cancel" in result.stdout
    assert "cancelled 12 order(s) on BTC/USDT:USDT, ETH/USDT:USDT" in result.stdout

    state = sim.state()
    assert open_orders_of(state, creds[0]) == []
    orders = orders_of(state, creds[0])
    assert len(orders) == 12 and all(o["status"] == "CANCELED" for o in orders)
    assert all(o["cancelTime"] >= killed_at for o in orders)

    code, out, err = bot.finish()
    assert code == 4, err
    assert "stopped (kill switch: on_tick" in out
    summary_line = next(line for line in out.splitlines() if line.startswith("  kill switch"))
    assert "cancelled 12 order(s) on BTC/USDT:USDT, ETH/USDT:USDT" in summary_line
    assert "Traceback" not in out + err
    run_id = next((state_home / "runs").iterdir()).name
    summary = _summary(state_home, run_id)
    assert summary["exit_code"] == 4
    assert len(summary["kill"]["cancelled"]) == 12
    ack = read_ack(run_id)
    assert ack is not None and ack["state"] == "done" and ack["level"] == "cancel"

    if mode == "loop":
        return
    # The sentinel stands: the same bot refuses to start again, naming how to clear it.
    again = run_cli("run", str(toml), "--duration", "5", env=sim_env(creds))
    assert again.returncode == 4
    assert "perpbot kill --clear --yes" in again.stderr
    assert len(again.stderr.strip().splitlines()) == 1


def test_halt_pauses_the_bot_and_resume_lets_it_go_on(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "drip", "orders_per_symbol": 2},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.1},
    )
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(orders_of(sim.state(), creds[0])) >= 5, timeout=30)

    result = run_cli("kill", "--level", "halt", "--reason", "pause", "--wait", "10")
    assert result.returncode == 0, result.stderr
    assert "halted with" in result.stdout
    halted = len(orders_of(sim.state(), creds[0]))
    time.sleep(1.0)  # ten ticks: a halted bot places nothing, and its orders stay
    state = sim.state()
    assert len(orders_of(state, creds[0])) == halted
    assert len(open_orders_of(state, creds[0])) == halted
    assert bot.proc.poll() is None

    resumed = run_cli("resume", "--yes", "--reason", "pause over")
    assert resumed.returncode == 0, resumed.stderr
    wait_until(lambda: len(orders_of(sim.state(), creds[0])) > halted + 2, timeout=10)
    bot.signal(signal.SIGTERM)
    code, out, err = bot.finish()
    assert code == 0, err
    assert "KILL_CLEARED" in out
    # A clean stop disarms the exchange's dead-man switch (countdown 0).
    assert account_of(sim.state(), creds[0])["countdowns"] == {}


def test_flatten_closes_positions_with_reduce_only_orders_only(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "sleep", "orders_per_symbol": 4, "open_position": 0.01},
    )
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 8, timeout=30)
    state = sim.state()
    assert position_of(state, creds[0], "BTCUSDT") == pytest.approx(0.01)
    assert position_of(state, creds[0], "ETHUSDT") == pytest.approx(0.01)

    killed_at = now_ms()
    result = run_cli("kill", "--level", "flatten", "--reason", "flatten drill", "--wait", "20")
    assert result.returncode == 0, result.stderr
    assert "closed BTC/USDT:USDT +0.01 -> +0" in result.stdout
    assert "closed ETH/USDT:USDT +0.01 -> +0" in result.stdout

    state = sim.state()
    assert position_of(state, creds[0], "BTCUSDT") == 0.0
    assert position_of(state, creds[0], "ETHUSDT") == 0.0
    assert open_orders_of(state, creds[0]) == []
    after = [o for o in orders_of(state, creds[0]) if o["time"] >= killed_at]
    assert {o["symbol"] for o in after} == {"BTCUSDT", "ETHUSDT"}
    assert all(o["reduceOnly"] for o in after), after
    assert all(o["side"] == "SELL" for o in after)
    code, _, err = bot.finish()
    assert code == 4, err
    sentinel = read_sentinel()
    assert sentinel is not None and sentinel.level == "flatten"


def test_a_halt_set_with_no_bot_running_refuses_its_start_until_resumed(
    bot_files: MakeBotFiles,
) -> None:
    """freqtrade's /stopentry is forgotten by a restart (peers.md): a halt here is a file
    that stands until a human resumes. Set while no bot runs, it refuses the next start
    (exit 4, one line, nothing sent: the simulator holds no order of the account), and once
    resumed the same bot starts and trades."""
    sim, creds, toml = bot_files(
        params={"mode": "drip", "orders_per_symbol": 2},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.1},
    )
    halted = run_cli("kill", "--level", "halt", "--reason", "no new entries", "--wait", "0")
    assert halted.returncode == 0, halted.stderr

    refused = run_cli("run", str(toml), "--duration", "3", env=sim_env(creds))
    assert refused.returncode == 4, refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert "the kill switch is set" in refused.stderr and "no new entries" in refused.stderr
    assert orders_of(sim.state(), creds[0]) == []

    resumed = run_cli("resume", "--yes", "--reason", "entries allowed again")
    assert resumed.returncode == 0, resumed.stderr
    ran = run_cli("run", str(toml), "--duration", "3", "--plain", env=sim_env(creds))
    assert ran.returncode == 0, ran.stderr
    assert orders_of(sim.state(), creds[0]), "the resumed bot placed nothing"
