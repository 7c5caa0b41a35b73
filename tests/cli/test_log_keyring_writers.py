"""A file-based keyring shared by bots and `perpbot keys`: writes are rare and serialised.

Before, each bot wrote its chain head to the keyring every 2 s, and a file keyring
rewrites its whole file per write: two bots (or a bot and `perpbot keys add`) lost each
other's entries, profiles disappeared and `keys list` failed. Now the head goes to the
keyring at a run's open, rotation and close only, every perpbot keyring write holds
`<state>/keyring.lock`, and a damaged keyring is one line (exit 1) that changes nothing.
Uses the test-only FileKeyring (tests/keys_support/backends.py), which races exactly like
keyrings.alt's file backends: read the file, change one entry, replace the file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import keyring
import pytest

from perpbot.audit.keystore import SERVICE
from perpbot.audit.subscriber import attach_to_bus
from perpbot.config import AuditSection
from perpbot.events import EventBus, ExchangeCall
from tests.conftest import ROOT, run_cli
from tests.keys_support.backends import ENV_FILE, FileKeyring, file_keyring_env

KEY = "PBTESTKEY0000000000000000000000wxyz"
SECRET = "PBTESTSECRET000000000000000000000qrst"

# A bot's keyring traffic, as fast as it can go: each start and stop of a run's log writes
# the chain head (and, the first time, the signing key) to the keyring.
BOTS = """
import sys
from pathlib import Path
from perpbot.audit.subscriber import attach_to_bus
from perpbot.events import Decision, EventBus
stop = Path(sys.argv[1])
i = 0
while not stop.exists():
    bus = EventBus()
    audit = attach_to_bus(bus, run_id=f"bot-{i}", profile=None, command="run")
    bus.publish(Decision("kill", "trip", "KILL_TEST", "signed"))
    audit.close("duration")
    i += 1
print(i)
"""

# Worst case of a bot's traffic: the chain head written to the keyring without pause.
HEADS = """
import sys
from pathlib import Path
from perpbot.audit.keystore import KeyStore
stop = Path(sys.argv[1])
store = KeyStore()
i = 0
while not stop.exists():
    store.write_head_keyring({"run": "hammer", "seq": i})
    i += 1
print(i)
"""

# `perpbot keys add` without the interpreter start-up between writes: many more chances
# to interleave with the other writer.
PROFILES = """
import sys
from perpbot.keys.store import new_profile, save_profile
for name in sys.argv[1:]:
    save_profile(new_profile(name, "PBTESTKEY0000000000000000000000wxyz",
                             "PBTESTSECRET000000000000000000000qrst", "sim"))
"""


@pytest.fixture
def kenv(tmp_path: Path) -> dict[str, str]:
    env = file_keyring_env(tmp_path / "keyring.json")
    env.update({"PERPBOT_API_KEY": "", "PERPBOT_API_SECRET": ""})
    return env


def add_profiles(env: dict[str, str], names: list[str], failures: list[str]) -> None:
    for name in names:
        r = run_cli(
            "keys", "add", name, "--exchange", "sim", "--stdin", env=env,
            input=f"{KEY}\n{SECRET}\n",
        )  # fmt: skip
        if r.returncode != 0:
            failures.append(r.stderr)


def listed(env: dict[str, str]) -> set[str]:
    r = run_cli("keys", "list", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert "is listed but its entry is gone" not in r.stderr
    return {p["profile"] for p in json.loads(r.stdout)}


def test_keys_add_while_bots_start_and_stop_loses_nothing(
    kenv: dict[str, str], state_home: Path, tmp_path: Path
) -> None:
    stop = tmp_path / "stop"
    bots = subprocess.Popen(
        [sys.executable, "-c", BOTS, str(stop)],
        env={**os.environ, **kenv, "PERPBOT_HOME": str(state_home)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    failures: list[str] = []
    try:
        time.sleep(1.0)  # the bot loop is writing to the keyring now
        add_profiles(kenv, [f"p{i}" for i in range(6)], failures)
    finally:
        stop.touch()
        out, err = bots.communicate(timeout=120)
    assert bots.returncode == 0, err
    assert int(out) > 3, "the bot loop hardly ran: the test proved nothing"
    assert failures == []
    assert listed(kenv) == {f"p{i}" for i in range(6)}
    store = json.loads(Path(kenv[ENV_FILE]).read_text())
    assert f"{SERVICE}\x00audit-signing-key" in store  # the bots' key survived too


def _python(code: str, args: list[str], env: dict[str, str], home: Path) -> Any:
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        env={**os.environ, **env, "PERPBOT_HOME": str(home)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_two_concurrent_writers_keep_every_profile(
    kenv: dict[str, str], state_home: Path, tmp_path: Path
) -> None:
    """Profiles saved while another process hammers the keyring with head writes, and two
    processes saving profiles at once: every profile is there afterwards."""
    stop = tmp_path / "stop"
    hammer = _python(HEADS, [str(stop)], kenv, state_home)
    time.sleep(0.5)
    writers = [_python(PROFILES, [f"{x}{i}" for i in range(25)], kenv, state_home) for x in "ab"]
    results = [w.communicate(timeout=180) for w in writers]
    stop.touch()
    out, err = hammer.communicate(timeout=60)
    assert all(w.returncode == 0 for w in writers), [e for _, e in results]
    assert hammer.returncode == 0 and int(out) > 20, err
    assert listed(kenv) == {f"{x}{i}" for x in "ab" for i in range(25)}


class CountingFileKeyring(FileKeyring):
    writes: ClassVar[list[str]] = []

    def set_password(self, service: str, username: str, password: str) -> None:
        type(self).writes.append(username)
        super().set_password(service, username, password)


def test_a_running_bot_writes_its_head_to_the_keyring_rarely(
    kenv: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_FILE, kenv[ENV_FILE])
    previous = keyring.core._keyring_backend
    keyring.set_keyring(CountingFileKeyring())
    CountingFileKeyring.writes = []
    try:
        bus = EventBus()
        audit = attach_to_bus(
            bus, run_id="busy", profile=None, command="run",
            settings=AuditSection(checkpoint_interval_s=0.02),
        )  # fmt: skip
        deadline = time.monotonic() + 0.6
        i = 0
        while time.monotonic() < deadline:  # ~30 checkpoint intervals with records
            bus.publish(
                ExchangeCall(
                    request_id=bus.next_request_id(), method="fetch_ticker", http_method="GET",
                    path="/fapi/v1/ticker/price", params={"symbol": "BTCUSDT"}, status=200,
                    ok=True, latency_ms=1.0,
                )
            )  # fmt: skip
            i += 1
            time.sleep(0.005)
        audit.close()
    finally:
        keyring.core._keyring_backend = previous
    heads = [u for u in CountingFileKeyring.writes if u.startswith("audit-checkpoint-")]
    checkpoints = audit.dir / "audit-0001.jsonl"
    assert checkpoints.read_bytes().count(b'"reason":"interval"') >= 5  # timer did run
    assert len(heads) == 2, CountingFileKeyring.writes  # the open and the close only


def test_a_damaged_keyring_is_one_line_and_nothing_is_lost(
    kenv: dict[str, str], state_home: Path
) -> None:
    add_profiles(kenv, ["keep-me"], [])
    ring = Path(kenv[ENV_FILE])
    damaged = ring.read_text()[:-7]  # a torn write: no longer JSON
    ring.write_text(damaged)
    for args in (["keys", "list"], ["keys", "show", "keep-me"], ["log", "key"]):
        r = run_cli(*args, env=kenv)
        errors = [x for x in r.stderr.splitlines() if x.startswith("perpbot: error:")]
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert len(errors) == 1 and "damaged" in errors[0], r.stderr
        assert "Traceback" not in r.stderr and KEY not in r.stderr + r.stdout
    added = run_cli(
        "keys", "add", "other", "--exchange", "sim", "--stdin", env=kenv,
        input=f"{KEY}\n{SECRET}\n",
    )  # fmt: skip
    assert added.returncode == 1 and "Traceback" not in added.stderr
    assert ring.read_text() == damaged  # nothing overwritten: repair it, nothing is lost
    assert not (state_home / "audit" / "signing-key").exists()  # no silent file key
