"""``isolation = "process"`` under a misbehaving strategy: the engine outlives it.

A spinning strategy's process is ended on kill; a crashed one leaves the stop sequence
running (its orders cancelled at the exchange), exit 1 and its traceback in the run folder;
one over its memory bound gets a MemoryError it can be told about, not the engine.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import tomli_w

from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    open_orders_of,
    orders_of,
    start_bot,
    wait_until,
    write_strategy,
)

HERE = Path(__file__).resolve().parent
BTC = "BTC/USDT:USDT"
CHILD = "perpbot.engine.isolation.child"


def children_of(pid: int) -> list[int]:
    """Strategy processes whose parent is ``pid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if CHILD in cmdline and ppid == pid:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kill_ends_a_spinning_strategy_process(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "loop", "orders_per_symbol": 2},
        strategy={"isolation": "process"},
    )  # fmt: skip
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 4, timeout=40)
    (child,) = wait_until(lambda: children_of(bot.proc.pid), timeout=10)
    result = run_cli("kill", "--reason", "spinning strategy", "--wait", "15")
    assert result.returncode == 0, result.stderr
    code, _out, err = bot.finish()
    assert code == 4, err
    assert not alive(child), "the strategy's process outlived the run"
    assert open_orders_of(sim.state(), creds[0]) == []


def test_a_sigkilled_engine_leaves_no_strategy_process(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    _sim, creds, toml = bot_files(
        params={"mode": "loop", "orders_per_symbol": 0},
        strategy={"isolation": "process"},
    )  # fmt: skip
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    (child,) = wait_until(lambda: children_of(bot.proc.pid), timeout=30)
    wait_until(lambda: "laid 0 orders" in bot.out.read_text(), timeout=30)  # spinning now
    bot.signal(signal.SIGKILL)
    bot.proc.wait(10)
    wait_until(lambda: not alive(child), timeout=10)


def write(tmp_path: Path, url: str, mode: str, **strategy: Any) -> Path:
    doc = {
        "strategy": {
            "name": f"misbehave-{mode}".replace("_", "-"),
            "file": str(HERE / "misbehave.py"),
            "symbols": [BTC],
            "tick_interval": 0.3,
            "isolation": "process",
            "params": {"mode": mode},
            **strategy,
        },
        "exchange": {"id": "sim", "url": url},
        "audit": {"enabled": False},
    }
    path = tmp_path / "misbehave.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def run(toml: Path, creds: tuple[str, str], duration: str = "20") -> Any:
    return run_cli(
        "run", str(toml), "--duration", duration, "--plain",
        env={"PERPBOT_SIM_API_KEY": creds[0], "PERPBOT_SIM_API_SECRET": creds[1]},
    )  # fmt: skip


def one_run(state_home: Path) -> Path:
    (run_dir,) = list((state_home / "runs").iterdir())
    return run_dir


def test_a_crashed_strategy_process_leaves_the_stop_sequence_running(
    sim: Any, tmp_path: Path, state_home: Path
) -> None:
    creds = sim.create_account()
    result = run(write(tmp_path, sim.base_url, "raise_exit"), creds)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "the strategy's process exited (1)" in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr  # one line; the traceback is kept
    orders = orders_of(sim.state(), creds[0])
    assert [o["status"] for o in orders] == ["CANCELED"]  # the stop sequence ran
    run_dir = one_run(state_home)
    log = (run_dir / "strategy.log").read_text()
    assert f'{HERE / "misbehave.py"}", line' in log and "the strategy gave up" in log
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["exit_code"] == 1 and summary["orders"]["cancelled"] == 1


def test_a_strategy_process_that_exits_is_told_with_its_exit_code(sim: Any, tmp_path: Path) -> None:
    creds = sim.create_account()
    result = run(write(tmp_path, sim.base_url, "exit"), creds)
    assert result.returncode == 1
    assert "the strategy's process exited (3)" in result.stderr, result.stderr
    assert [o["status"] for o in orders_of(sim.state(), creds[0])] == ["CANCELED"]


def test_memory_over_the_bound_is_the_strategys_error_not_the_engines(
    sim: Any, tmp_path: Path, state_home: Path
) -> None:
    creds = sim.create_account()
    toml = write(tmp_path, sim.base_url, "memory", memory_mb=512)
    result = run(toml, creds, duration="4")
    out = result.stdout + result.stderr
    assert f"{HERE / 'misbehave.py'}:" in out and "MemoryError" in out, out
    assert result.returncode in (0, 1), out  # five in a row stop the run (exit 1)
    errors = (one_run(state_home) / "strategy_errors.jsonl").read_text().splitlines()
    assert errors and "MemoryError" in json.loads(errors[0])["error"]
    assert os.environ.get("PERPBOT_SIM_API_SECRET") is None  # (the test's own env is clean)


def test_bad_params_are_exit_2_before_any_request(sim: Any, tmp_path: Path) -> None:
    """The strategy's process loads and validates it before the engine connects."""
    doc = {
        "strategy": {
            "name": "grid",
            "file": str(HERE.parents[2] / "strategies" / "grid.py"),
            "symbols": [BTC],
            "params": {"levels": 0},
        },
        "exchange": {"id": "sim", "url": sim.base_url},
    }
    toml = tmp_path / "grid.toml"
    toml.write_text(tomli_w.dumps(doc))
    creds = sim.create_account()
    result = run(toml, creds)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "[strategy.params] levels" in line, line
    assert sim.state()["counters"]["requests"] == 0


def test_a_strategy_over_its_cpu_bound_is_ended_and_the_run_stops_cleanly(
    sim: Any, tmp_path: Path
) -> None:
    """[strategy] cpu_s: a spinning strategy is ended by the kernel (SIGXCPU); the engine
    stops the run (exit 1, one line), its orders cancelled."""
    creds = sim.create_account()
    toml = write_strategy(
        tmp_path, sim.base_url, params={"mode": "loop", "orders_per_symbol": 2},
        strategy={"isolation": "process", "cpu_s": 2, "symbols": [BTC]},
    )  # fmt: skip
    result = run(toml, creds, duration="60")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "killed by SIGXCPU (it used up its [strategy] cpu_s)" in result.stderr, result.stderr
    orders = orders_of(sim.state(), creds[0])
    assert len(orders) == 2 and all(o["status"] == "CANCELED" for o in orders)
