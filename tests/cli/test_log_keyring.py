"""With a working OS keyring the signing key and the chain head live in it (no files to
steal), and the keyring's copy of the head still catches a truncation after the state dir's
copies were edited away. Uses the test-only file-backed keyring of tests/keys_support."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest

from perpbot.audit.subscriber import attach_to_bus
from perpbot.events import Decision, EventBus
from tests.conftest import run_cli
from tests.keys_support.backends import ENV_FILE, FileKeyring, file_keyring_env


@pytest.fixture
def ring_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    env = file_keyring_env(tmp_path / "keyring.json")
    monkeypatch.setenv(ENV_FILE, env[ENV_FILE])
    previous = keyring.core._keyring_backend
    keyring.set_keyring(FileKeyring())
    yield env
    keyring.core._keyring_backend = previous


def test_key_and_head_in_the_keyring_catch_truncation(
    ring_env: dict[str, str], state_home: Path
) -> None:
    key = run_cli("log", "key", "--json", env=ring_env)
    assert key.returncode == 0, key.stderr
    assert json.loads(key.stdout)["stored_in"] == "keyring"
    assert "warning" not in key.stderr
    assert not (state_home / "audit" / "signing-key").exists()

    bus = EventBus()
    audit = attach_to_bus(bus, run_id="run-k", profile=None, command="run")
    for i in range(6):
        bus.publish(Decision("kill", "trip", "KILL_TEST", f"trip {i}"))  # each one signed
    audit.close()
    assert run_cli("log", "verify", env=ring_env).returncode == 0

    log = audit.dir / "audit-0001.jsonl"
    log.write_bytes(b"".join(x + b"\n" for x in log.read_bytes().split(b"\n")[:-4]))
    (audit.dir / "checkpoint.json").unlink()
    (state_home / "audit" / "head.json").unlink()
    bad = run_cli("log", "verify", env=ring_env)
    assert bad.returncode == 1
    assert "run-k" in bad.stdout and "truncated" in bad.stdout and "keyring" in bad.stdout
