"""`perpbot doctor` as a user meets it: one line per check, the fix, exit 1 on a failure."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import tomli_w

from tests.conftest import ROOT
from tests.keys_support.backends import file_keyring_env
from tests.ops.receivers import WebhookReceiver, free_port


def _doctor(*args: str, env: dict[str, str], core: int = 0) -> subprocess.CompletedProcess[str]:
    def limits() -> None:
        resource.setrlimit(
            resource.RLIMIT_CORE, (core, resource.getrlimit(resource.RLIMIT_CORE)[1])
        )

    return subprocess.run(
        [sys.executable, "-m", "perpbot", "doctor", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(ROOT),
        preexec_fn=limits,
    )


def _sim_strategy(tmp_path: Path, url: str | None = None) -> Path:
    doc: dict[str, Any] = {
        "strategy": {"name": "g", "file": str(ROOT / "strategies" / "grid.py"),
                     "symbols": ["BTC/USDT:USDT"]},
        "exchange": {"id": "sim", **({"url": url} if url else {})},
    }  # fmt: skip
    path = tmp_path / "s.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def test_a_ready_machine_passes(tmp_path: Path, state_home: Path, sim: Any) -> None:
    state_home.chmod(0o700)
    env = file_keyring_env(tmp_path / "kr.json")
    with WebhookReceiver() as hook:
        add = subprocess.run(
            [sys.executable, "-m", "perpbot", "alerts", "add", "hook"],
            input=hook.url("s3cret") + "\n", env={**os.environ, **env}, capture_output=True,
            text=True, cwd=str(ROOT),
        )  # fmt: skip
        assert add.returncode == 0, add.stderr
        result = _doctor(str(_sim_strategy(tmp_path, sim.base_url)), "--json", env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    assert list(checks) == [
        "keyring", "clock", "state-dir", "disk", "core-dumps", "alerts", "key-audit",
    ]  # fmt: skip
    assert all(c["status"] in ("ok", "skip") for c in checks.values()), checks
    assert sim.base_url in checks["clock"]["detail"]
    assert "1 of 1 destination(s) reachable" in checks["alerts"]["detail"]
    assert "s3cret" not in result.stdout + result.stderr


def test_each_problem_is_one_line_with_its_fix(tmp_path: Path, state_home: Path) -> None:
    state_home.chmod(0o755)
    env = file_keyring_env(tmp_path / "kr.json")
    dead_port = free_port()  # nothing listens there
    add = subprocess.run(
        [sys.executable, "-m", "perpbot", "alerts", "add", "dead"],
        input=f"json://127.0.0.1:{dead_port}/x\n", env={**os.environ, **env},
        capture_output=True, text=True, cwd=str(ROOT),
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    result = _doctor(str(_sim_strategy(tmp_path)), env=env, core=1 << 20)
    assert result.returncode == 1
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    assert len(lines) == 7 and "Traceback" not in result.stderr
    assert (
        lines["state-dir"].startswith("FAIL")
        and f"fix: chmod 700 {state_home}" in lines["state-dir"]
    )
    assert lines["core-dumps"].startswith("FAIL") and "LimitCORE=0" in lines["core-dumps"]
    assert lines["alerts"].startswith("FAIL") and "unreachable: dead" in lines["alerts"]
    assert lines["clock"].startswith("OK") and "embedded simulator" in lines["clock"]
    assert lines["keyring"].startswith("OK")


def test_no_keyring_fails_with_the_fix(tmp_path: Path, state_home: Path) -> None:
    state_home.chmod(0o700)
    result = _doctor(env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if x.split()[1] == "keyring")
    assert line.startswith("FAIL") and "fix: see docs/service.md" in line
    assert any(x.startswith("SKIP  clock") for x in result.stdout.splitlines())


def test_key_audit_asks_the_exchange_about_the_profiles_key(
    tmp_path: Path, state_home: Path, sim: Any
) -> None:
    """With a key profile, doctor audits the key on the exchange (the simulator's account
    permissions are the truth): an IP-unrestricted key fails with the fix, a good one passes."""
    state_home.chmod(0o700)
    env = file_keyring_env(tmp_path / "kr.json")
    for name, perms in (("good", {}), ("open", {"ipRestrict": False})):
        key, secret = sim.create_account(permissions=perms or None)
        add = subprocess.run(
            [sys.executable, "-m", "perpbot", "keys", "add", name, "--exchange", "sim", "--stdin"],
            input=f"{key}\n{secret}\n", env={**os.environ, **env}, capture_output=True,
            text=True, cwd=str(ROOT),
        )  # fmt: skip
        assert add.returncode == 0, add.stderr
        scope = subprocess.run(
            [sys.executable, "-m", "perpbot", "keys", "scope", name, "--command", "run",
             "--allow", "trade,cancel", "--yes"],
            env={**os.environ, **env}, capture_output=True, text=True, cwd=str(ROOT),
        )  # fmt: skip
        assert scope.returncode == 0, scope.stderr
    checks = {}
    for name in ("good", "open"):
        path = _sim_strategy(tmp_path, sim.base_url)
        path.write_text(path.read_text() + f'profile = "{name}"\n')
        result = _doctor(str(path), "--json", env=env)
        assert "Traceback" not in result.stderr, result.stderr
        checks[name] = {c["name"]: c for c in json.loads(result.stdout)}["key-audit"]
    assert checks["good"]["status"] == "ok", checks
    assert checks["good"]["detail"] == "good: permissions match the grant"
    assert checks["open"]["status"] == "fail", checks
    assert "not restricted to trusted IP addresses" in checks["open"]["detail"]
