"""The keys CLI against a real Secret Service (gnome-keyring), as subprocesses.

Under `.ci/secret-service.sh pytest ...` (PERPBOT_SECRET_SERVICE=1) the session it made is
used, and a broken keyring fails these tests. Otherwise they start a private one with
`.ci/secret-service.sh --env` (never the machine user's keyring) and are skipped, with the
reason, only where none can be started.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli
from tests.keys_support.profiles import strategy_toml

SCRIPT = ROOT / ".ci" / "secret-service.sh"
SECRET = "SSTESTSECRET4b7e1a9c3f6d2b8e5a1c7f4d9b2e6a3c"


def _parse_exports(text: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in text.splitlines():
        parts = shlex.split(line)
        if len(parts) == 2 and parts[0] == "export" and "=" in parts[1]:
            name, _, value = parts[1].partition("=")
            env[name] = value
    return env


@pytest.fixture(scope="module")
def secret_service() -> Iterator[dict[str, str]]:
    if os.environ.get("PERPBOT_SECRET_SERVICE") == "1":
        yield {}  # inside .ci/secret-service.sh: already started and verified
        return
    if shutil.which("bash") is None:
        pytest.skip("no Secret Service can be started here: bash not found")
    r = subprocess.run(
        ["bash", str(SCRIPT), "--env"], capture_output=True, text=True, timeout=60, check=False
    )
    if r.returncode != 0:
        reason = (r.stderr.strip().splitlines() or ["unknown"])[-1]
        pytest.skip(f"no Secret Service can be started here ({reason})")
    env = _parse_exports(r.stdout)
    try:
        yield env
    finally:
        for pid in env.get("PERPBOT_SECRET_SERVICE_PIDS", "").split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGTERM)
        for var in ("XDG_DATA_HOME", "XDG_RUNTIME_DIR"):
            if env.get(var):
                shutil.rmtree(env[var], ignore_errors=True)


def test_keys_flow_with_a_real_secret_service(
    secret_service: dict[str, str], tmp_path: Path, sim: Any
) -> None:
    env = {**secret_service, "PERPBOT_API_KEY": "", "PERPBOT_API_SECRET": ""}
    profile = f"ss-{os.getpid()}"
    key, _ = sim.create_account()

    def cli(*args: str, input: str | None = None) -> Any:
        return run_cli(*args, env=env, input=input)

    r = cli("keys", "add", profile, "--exchange", "sim", "--stdin", input=f"{key}\n{SECRET}\n")
    assert r.returncode == 0, r.stderr
    try:
        r = cli("keys", "scope", profile, "--command", "run", "--allow", "cancel")
        assert r.returncode == 0, r.stderr
        r = cli("keys", "show", profile)
        assert r.returncode == 0, r.stderr
        assert f"****{key[-4:]}" in r.stdout and "read, cancel" in r.stdout
        assert key not in r.stdout and SECRET not in r.stdout
        # the entry really is in the Secret Service, and its store is not plaintext
        data_home = Path(secret_service.get("XDG_DATA_HOME") or os.environ["XDG_DATA_HOME"])
        stored = b"".join(p.read_bytes() for p in data_home.rglob("*") if p.is_file())
        assert stored and SECRET.encode() not in stored
        toml = strategy_toml(tmp_path, url=sim.base_url, profile=profile)
        r = cli("run", str(toml), "--duration", "2")
        assert r.returncode == 3, r.stderr
        assert f"perpbot keys scope {profile} --command run --allow trade" in r.stderr
        assert sim.state()["counters"]["requests"] == 0
    finally:
        r = cli("keys", "remove", profile)
    assert r.returncode == 0, r.stderr
    r = cli("keys", "show", profile)
    assert r.returncode == 2 and "not found" in r.stderr
