"""A KILL file that cannot be read stops a real bot, and keeps one from starting.

The bot runs against the simulator (in the test's event loop for the watchdog cases, as a
`perpbot run` subprocess for the CLI case); the simulator's open orders are the truth.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    InProcessBot,
    MakeBotFiles,
    open_orders_of,
    orders_of,
    quiet_market,
    sim_env,
    start_bot,
    wait_until,
    write_strategy,
)
from tests.unit.kill.test_kill_sentinel_failclosed import _dangling, _fifo, _loop, _nested

CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "dangling symlink": (_dangling, "is a symlink to"),
    "symlink loop": (_loop, "Too many levels of symbolic links"),
    "fifo": (_fifo, "is a FIFO, not a regular file"),
    "nested 100k deep": (_nested, "nested too deeply"),
}


@pytest.fixture
def account(sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, tuple[str, str]]:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", creds[0])
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", creds[1])
    return sim, creds


@pytest.mark.parametrize("case", sorted(CASES))
async def test_the_watchdog_treats_a_bad_kill_file_as_cancel(
    account: tuple[Any, tuple[str, str]], tmp_path: Path, state_home: Path, case: str
) -> None:
    sim, (key, _) = account
    make, what = CASES[case]
    toml = write_strategy(
        tmp_path,
        sim.base_url,
        params={"mode": "idle", "orders_per_symbol": 2},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.1},
    )
    bot = InProcessBot(toml).start()
    await bot.until(lambda: len(open_orders_of(sim.state(), key)) == 2)
    make(state_home / "KILL")
    summary = await bot.finish()
    assert summary["exit_code"] == 4
    assert what in summary["kill"]["reason"]
    assert "treated as cancel for all bots" in summary["kill"]["reason"]
    assert open_orders_of(sim.state(), key) == []
    assert all(o["status"] == "CANCELED" for o in orders_of(sim.state(), key))
    assert not bot.decisions("KILL_WATCHDOG_ERROR")


def test_a_fifo_kill_file_stops_a_running_bot_and_blocks_a_restart(
    bot_files: MakeBotFiles, tmp_path: Path, state_home: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(params={"mode": "idle", "orders_per_symbol": 3})
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 6, timeout=30)
    os.mkfifo(state_home / "KILL")  # nobody ever writes it: a blocking read would hang
    code, out, err = bot.finish()
    assert code == 4, err
    assert "is a FIFO, not a regular file" in out
    assert "Traceback" not in out + err
    assert open_orders_of(sim.state(), creds[0]) == []

    shown = run_cli("status", "--json", "--all")
    assert shown.returncode == 0, shown.stderr
    kill = json.loads(shown.stdout)["kill"]
    assert kill["level"] == "cancel" and "is a FIFO, not a regular file" in kill["reason"]
    again = run_cli("run", str(toml), "--duration", "5", env=sim_env(creds), timeout=60)
    assert again.returncode == 4
    (line,) = again.stderr.strip().splitlines()
    assert "refusing to start hang: the kill switch is set" in line
    assert "is a FIFO, not a regular file" in line


def test_sigterms_after_the_stop_never_replace_its_exit_code(
    sim_factory: Any, tmp_path: Path, state_home: Path, bots: list[Bot]
) -> None:
    """A supervisor's SIGTERMs from the moment the summary is out (the run has stopped, the
    process is closing its sessions and tearing the interpreter down) leave exit code 4."""
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    toml = write_strategy(tmp_path, sim.base_url, params={"mode": "idle", "orders_per_symbol": 1})
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 2, timeout=30)
    (state_home / "KILL").write_text("{not json")
    wait_until(lambda: "  files: " in bot.out.read_text(), timeout=30)
    sent = 0
    while bot.proc.poll() is None:  # every 5 ms until it is gone
        bot.signal(signal.SIGTERM)
        sent += 1
        time.sleep(0.005)
    code, out, err = bot.finish()
    assert sent > 10  # the teardown was under fire for more than a moment
    assert code == 4, (code, err[-2000:])
    assert "Traceback" not in out + err
    assert open_orders_of(sim.state(), creds[0]) == []
