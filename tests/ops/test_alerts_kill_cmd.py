"""`perpbot kill` and `perpbot kill --clear` as a user runs them reach the global alert
destinations (through the outbox's detached sender), with who and why."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.kill_strategies.support import wait_until
from tests.keys_support.backends import file_keyring_env
from tests.ops.receivers import WebhookReceiver


def test_kill_set_and_clear_are_alerts_with_who_and_why(
    tmp_path: Path, state_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k, v in file_keyring_env(tmp_path / "keyring.json").items():
        monkeypatch.setenv(k, v)
    with WebhookReceiver() as hook:
        assert run_cli("alerts", "add", "hook", input=hook.url() + "\n").returncode == 0
        killed = run_cli("kill", "--level", "halt", "--reason", "funding spike", "--wait", "0")
        assert killed.returncode == 0, killed.stderr
        hook.wait_for(1, timeout=60)
        again = run_cli("kill", "--level", "halt", "--reason", "again", "--wait", "0")
        assert again.returncode == 0, again.stderr  # already set: no second KILL_SET
        cleared = run_cli("kill", "--clear", "--yes", "--reason", "spike over")
        assert cleared.returncode == 0, cleared.stderr
        hook.wait_for(2, timeout=60)
    titles = [b["title"] for b in hook.bodies]
    assert [t.split(": ")[-1] for t in titles] == ["KILL_SET", "KILL_CLEARED"], titles
    set_msg, clear_msg = hook.bodies[0]["message"], hook.bodies[1]["message"]
    assert "level halt" in set_msg and "funding spike" in set_msg and "set by " in set_msg
    assert "spike over" in clear_msg
    outbox = state_home / "alerts" / "outbox"
    wait_until(lambda: not list(outbox.glob("*.json")), timeout=30)  # removed once delivered
