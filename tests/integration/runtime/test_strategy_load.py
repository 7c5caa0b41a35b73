"""A strategy whose file never finishes importing (top-level code that sleeps or spins):
``[strategy] load_timeout_s`` bounds the wait, its process is ended, and nothing reached the
exchange; a Ctrl-C during the load is exit 130 with no process left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.conftest import ROOT, run_cli
from tests.integration.kill_strategies.support import wait_until
from tests.integration.runtime.test_isolation import alive, children_of

HERE = Path(__file__).resolve().parent
BTC = "BTC/USDT:USDT"


def write(tmp_path: Path, url: str, **strategy: Any) -> Path:
    doc = {
        "strategy": {
            "name": "slow-import",
            "file": str(HERE / "slow_import.py"),
            "symbols": [BTC],
            "isolation": "process",
            **strategy,
        },
        "exchange": {"id": "sim", "url": url},
    }
    path = tmp_path / "slow.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def env_for(creds: tuple[str, str], load: str) -> dict[str, str]:
    return {
        "PERPBOT_SIM_API_KEY": creds[0],
        "PERPBOT_SIM_API_SECRET": creds[1],
        "PERPBOT_TEST_LOAD": load,
    }


@pytest.mark.parametrize("load", ["sleep", "spin"])
def test_a_strategy_that_never_loads_is_ended_after_load_timeout(
    sim: Any, tmp_path: Path, load: str
) -> None:
    creds = sim.create_account()
    toml = write(tmp_path, sim.base_url, load_timeout_s=1)
    started = time.monotonic()
    result = run_cli("run", str(toml), "--plain", env=env_for(creds, load), timeout=60)
    took = time.monotonic() - started
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert "did not load within 1 s" in line and "load_timeout_s" in line, line
    assert "Traceback" not in result.stdout + result.stderr
    assert took < 30, f"the run waited {took:.1f} s for a 1 s load bound"
    assert sim.state()["counters"]["requests"] == 0  # nothing reached the exchange


def test_ctrl_c_while_the_strategy_loads_leaves_no_process(sim: Any, tmp_path: Path) -> None:
    creds = sim.create_account()
    toml = write(tmp_path, sim.base_url, load_timeout_s=600)
    proc = subprocess.Popen(
        [sys.executable, "-m", "perpbot", "run", str(toml), "--plain"],
        env={**os.environ, **env_for(creds, "sleep")},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
    )
    try:
        (child,) = wait_until(lambda: children_of(proc.pid), timeout=30)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    wait_until(lambda: not alive(child), timeout=10)
    assert sim.state()["counters"]["requests"] == 0


def test_a_state_dir_the_strategy_could_read_is_said_at_start(
    sim: Any, tmp_path: Path, state_home: Path
) -> None:
    """Landlock leaves readable what lies beneath the strategy's own folder: a state dir
    there (here $PERPBOT_HOME inside the strategy's folder) is named at start."""
    (tmp_path / "quiet.py").write_text(
        "from perpbot.engine import Strategy\n\n\nclass Quiet(Strategy):\n    pass\n"
    )
    doc = {
        "strategy": {"name": "quiet", "file": "quiet.py", "symbols": [BTC]},
        "exchange": {"id": "sim", "url": sim.base_url},
    }
    toml = tmp_path / "quiet.toml"
    toml.write_text(tomli_w.dumps(doc))
    creds = sim.create_account()
    result = run_cli("run", str(toml), "--plain", "--duration", "1", env=env_for(creds, "-"))
    assert result.returncode == 0, result.stderr
    warning = f"the state dir {state_home.resolve()} lies beneath {tmp_path.resolve()}"
    assert warning in result.stderr, result.stderr
