"""A `perpbot run` that cannot start alerts RUN_CRASHED; one the kill switch stops, RUN_REFUSED."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.conftest import ROOT, run_cli
from tests.integration.kill_strategies.support import wait_until
from tests.keys_support.backends import file_keyring_env
from tests.ops.receivers import WebhookReceiver, free_port


def _toml(tmp_path: Path, **sections: Any) -> Path:
    doc = tomllib.loads((ROOT / "strategies" / "grid.toml").read_text())
    doc["strategy"]["file"] = str(ROOT / "strategies" / "grid.py")
    doc.update(sections)
    path = tmp_path / "grid.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def test_a_run_that_cannot_connect_alerts_run_crashed(
    tmp_path: Path, state_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in file_keyring_env(tmp_path / "kr.json").items():
        monkeypatch.setenv(k, v)
    dead_exchange = f"http://127.0.0.1:{free_port()}"
    toml = _toml(
        tmp_path,
        exchange={"id": "sim", "url": dead_exchange},
        retry={"max_attempts": 1, "deadline_s": 2},
    )
    with WebhookReceiver() as hook:
        assert run_cli("alerts", "add", "hook", input=hook.url() + "\n").returncode == 0
        run = run_cli(
            "run", str(toml), "--duration", "5",
            env={"PERPBOT_SIM_API_KEY": "k", "PERPBOT_SIM_API_SECRET": "s"},
        )  # fmt: skip
        assert run.returncode == 1, run.stderr
        hook.wait_for(1)
    assert "RUN_CRASHED" in hook.bodies[0]["title"]
    assert "[critical] grid" in hook.bodies[0]["title"]
    assert "Traceback" not in run.stderr


def test_a_run_the_kill_switch_stops_alerts_run_refused(
    tmp_path: Path, state_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in file_keyring_env(tmp_path / "kr.json").items():
        monkeypatch.setenv(k, v)
    toml = _toml(tmp_path, alerts={"min_severity": "critical", "exclude": ["KILL_*"]})
    with WebhookReceiver() as hook:
        assert run_cli("alerts", "add", "hook", input=hook.url() + "\n").returncode == 0
        bot = subprocess.Popen(
            [sys.executable, "-m", "perpbot", "run", str(toml), "--duration", "60", "--plain"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
        )  # fmt: skip
        try:
            wait_until(lambda: list((state_home / "bots").glob("*.json")), timeout=60)
            assert run_cli("kill", "--reason", "stop for the test").returncode == 0
            _, err = bot.communicate(timeout=60)
        finally:
            if bot.poll() is None:
                bot.kill()
        assert bot.returncode == 4, err
        hook.wait_for(2)  # the run's RUN_REFUSED, and `perpbot kill`'s own KILL_SET
    titles = sorted(b["title"] for b in hook.bodies)
    # the run's [alerts] excludes KILL_*; the command's alert follows the global config
    assert titles == ["perpbot [critical] grid: RUN_REFUSED", "perpbot [critical]: KILL_SET"]
    refused = next(b for b in hook.bodies if "RUN_REFUSED" in b["title"])
    assert "stop for the test" in refused["message"]
