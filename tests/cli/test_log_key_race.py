"""Creating the signing key is exclusive: bots and `perpbot log key` started at once on a
fresh state dir all get the same key (lock, create-if-absent, re-read).

Before, ten bots started together created three keys and five runs then failed "key
mismatch". Here ten processes open a log at the same instant (released together by a
barrier file), and ten `perpbot log key` run at once, with no keyring (the 0600 file) and
with a file-based keyring.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from tests.keys_support.backends import file_keyring_env

N = 10
NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}

BOT = """
import os, sys, time
from pathlib import Path
go = Path(sys.argv[1])
while not go.exists():
    time.sleep(0.001)
from perpbot.audit.subscriber import attach_to_bus
from perpbot.events import Decision, EventBus
bus = EventBus()
audit = attach_to_bus(bus, run_id=sys.argv[2], profile=None, command="run",
                      warn=lambda _w: None)
bus.publish(Decision("kill", "trip", "KILL_TEST", "one signed record"))
audit.close("duration")
print(audit.fingerprint)
"""


def _env(state_home: Path, extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra, "PERPBOT_HOME": str(state_home)}


def _spawn(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, *args],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(params=["no-keyring", "file-keyring"])
def key_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "no-keyring":
        return dict(NO_KEYRING)
    return file_keyring_env(tmp_path / "keyring.json")


def test_ten_bots_started_at_once_share_one_key(
    state_home: Path, tmp_path: Path, key_env: dict[str, str]
) -> None:
    go = tmp_path / "go"
    env = _env(state_home, key_env)
    procs = [_spawn(["-c", BOT, str(go), f"bot-{i}"], env) for i in range(N)]
    time.sleep(1.0)  # every process is importing or waiting at the barrier
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    fingerprints = {o.strip() for o, _ in outs}
    assert len(fingerprints) == 1, fingerprints
    verified = subprocess.run(
        [sys.executable, "-m", "perpbot", "log", "verify", "--accept-unanchored", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(verified.stdout)
    assert verified.returncode == 0 and report["runs"] == N, verified.stdout
    assert not [d for d in report["damage"] if d["kind"] == "key mismatch"]


def test_log_key_run_concurrently_hands_out_one_key(
    state_home: Path, key_env: dict[str, str]
) -> None:
    env = _env(state_home, key_env)
    procs = [_spawn(["-m", "perpbot", "log", "key", "--json"], env) for _ in range(N)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    keys = {json.loads(o)["public_key"] for o, _ in outs}
    assert len(keys) == 1, keys
    pub = (state_home / "audit" / "signing-key.pub").read_text().strip()
    assert keys == {pub}
