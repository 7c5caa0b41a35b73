"""`perpbot keys ...` and the run preflight as a user meets them: subprocesses, exit codes.

The keyring is the test-only FileKeyring (tests/keys_support/backends.py), chosen with
PYTHON_KEYRING_BACKEND, so these run anywhere; test_keys_secret_service.py repeats the core
flow against a real Secret Service.
"""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, run_cli
from tests.keys_support.backends import file_keyring_env
from tests.keys_support.profiles import strategy_toml

KEY = "PBTESTKEY0000000000000000000000wxyz"
SECRET = "PBTESTSECRET000000000000000000000qrst"


@pytest.fixture
def kenv(tmp_path: Path) -> dict[str, str]:
    """A file keyring outside the state dir, and no stray credentials from the caller."""
    env = file_keyring_env(tmp_path / "keyring.json")
    env.update({"PERPBOT_API_KEY": "", "PERPBOT_API_SECRET": ""})
    return env


def keys(env: dict[str, str], *args: str, input: str | None = None) -> Any:
    return run_cli("keys", *args, env=env, input=input)


def add(env: dict[str, str], name: str, key: str = KEY, secret: str = SECRET) -> None:
    r = keys(env, "add", name, "--exchange", "sim", "--stdin", input=f"{key}\n{secret}\n")
    assert r.returncode == 0, r.stderr


def test_add_list_show_remove(kenv: dict[str, str]) -> None:
    add(kenv, "main")
    r = keys(kenv, "list")
    assert r.returncode == 0 and "main" in r.stdout and "****wxyz" in r.stdout
    r = keys(kenv, "show", "main")
    assert r.returncode == 0
    for expected in ("exchange  sim", "api key   ****wxyz", "run         read", "max notional"):
        assert expected in r.stdout
    doc = json.loads(keys(kenv, "show", "main", "--json").stdout)
    assert doc["api_key"] == "****wxyz" and doc["grant"]["run"] == ["read"]
    assert doc["created"] and doc["updated"]
    r = keys(kenv, "add", "main", "--exchange", "sim", "--stdin", input=f"{KEY}\n{SECRET}\n")
    assert r.returncode == 2 and "already exists" in r.stderr
    r = keys(kenv, "remove", "main")
    assert r.returncode == 0 and "removed" in r.stdout
    r = keys(kenv, "show", "main")
    assert r.returncode == 2 and "not found" in r.stderr
    assert "no key profiles" in keys(kenv, "list").stdout


def test_secrets_come_from_env_or_stdin_never_argv(kenv: dict[str, str]) -> None:
    env = {**kenv, "PERPBOT_API_KEY": KEY, "PERPBOT_API_SECRET": SECRET}
    r = keys(env, "add", "envy", "--exchange", "sim")
    assert r.returncode == 0, r.stderr
    for argv in ([KEY, SECRET], [f"--secret={SECRET}"]):
        r = keys(kenv, "add", "argv", "--exchange", "sim", *argv)
        assert r.returncode == 2 and "never read from the command line" in r.stderr
        assert KEY not in r.stderr + r.stdout and SECRET not in r.stderr + r.stdout
    r = keys(kenv, "add", "half", "--exchange", "sim", "--stdin", input=f"{KEY}\n")
    assert r.returncode == 2 and "expected 2" in r.stderr
    r = keys(kenv, "add", "noinput", "--exchange", "sim", input="")
    assert r.returncode == 2 and "--stdin" in r.stderr and "PERPBOT_API_KEY" in r.stderr
    r = keys(kenv, "add", "bad", "--exchange", "nope", "--stdin", input=f"{KEY}\n{SECRET}\n")
    assert r.returncode == 2 and "--exchange" in r.stderr
    assert [p["profile"] for p in json.loads(keys(kenv, "list", "--json").stdout)] == ["envy"]


def _pty_session(argv: list[str], env: dict[str, str], answers: list[str]) -> tuple[int, str]:
    """Run argv on a pseudo-terminal, answering each prompt in turn; return (rc, output)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        argv,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        cwd=ROOT,
        start_new_session=True,  # no controlling tty: getpass uses the pty on stdin
    )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    pending = list(answers)
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
            # click prints "API key:", then getpass turns echo off and prints " "
            if pending and out.endswith(b": "):
                os.write(master, pending.pop(0).encode() + b"\n")
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), out.decode(errors="replace")


def test_hidden_prompt_does_not_echo_the_key(kenv: dict[str, str]) -> None:
    env = {**os.environ, **kenv}
    env.pop("PERPBOT_API_KEY")
    env.pop("PERPBOT_API_SECRET")
    rc, out = _pty_session(
        [sys.executable, "-m", "perpbot", "keys", "add", "tty", "--exchange", "sim"],
        env,
        [KEY, SECRET],
    )
    assert rc == 0, out
    assert "API key" in out and "API secret" in out and "****wxyz" in out
    assert KEY not in out and SECRET not in out
    assert json.loads(keys(kenv, "show", "tty", "--json").stdout)["api_key"] == "****wxyz"


def test_scope_widening_asks_and_fund_moves_are_refused(kenv: dict[str, str]) -> None:
    add(kenv, "main")
    r = keys(kenv, "scope", "main", "--command", "run", "--allow", "trade,cancel", input="")
    assert r.returncode == 2 and "--yes" in r.stderr
    r = keys(kenv, "scope", "main", "--command", "run", "--allow", "trade", input="n\n")
    assert r.returncode == 1 and "nothing changed" in r.stderr
    assert json.loads(keys(kenv, "show", "main", "--json").stdout)["grant"]["run"] == ["read"]
    r = keys(kenv, "scope", "main", "--command", "run", "--allow", "trade,cancel", input="y\n")
    assert r.returncode == 0 and "(was: read)" in r.stdout
    r = keys(kenv, "scope", "main", "--command", "kill", "--allow", "cancel,reduce")
    assert r.returncode == 0, r.stderr  # no confirmation needed for cancel/reduce
    r = keys(kenv, "scope", "main", "--allow", "leverage", "--max-leverage", "3", "--yes")
    assert r.returncode == 0
    for scope in ("withdraw", "transfer"):
        r = keys(kenv, "scope", "main", "--allow", scope, "--yes")
        assert r.returncode == 3 and "never transfers or withdraws" in r.stderr
    r = keys(kenv, "scope", "main", "--command", "status", "--allow", "cancel")
    assert r.returncode == 2 and "never uses it" in r.stderr
    doc = json.loads(keys(kenv, "show", "main", "--json").stdout)
    assert doc["grant"] == {
        "run": ["read", "trade", "cancel", "leverage"],
        "kill": ["read", "reduce", "cancel"],
        "status": ["read"],
        "keys audit": ["read"],
    }
    assert doc["limits"]["max_leverage"] == 3.0


def test_no_keyring_backend_names_the_fix(tmp_path: Path) -> None:
    r = run_cli("keys", "list", env={"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert r.returncode == 1
    assert "gnome-keyring" in r.stderr and "PYTHON_KEYRING_BACKEND" in r.stderr
    assert "Traceback" not in r.stderr


def test_run_is_refused_before_connecting(kenv: dict[str, str], tmp_path: Path, sim: Any) -> None:
    key, secret = sim.create_account()
    add(kenv, "main", key, secret)
    toml = strategy_toml(tmp_path, url=sim.base_url, profile="main")
    r = run_cli("run", str(toml), "--duration", "5", env=kenv)
    assert r.returncode == 3, r.stderr
    line = r.stderr.strip()
    assert "'main'" in line and "'run'" in line and "trade, cancel" in line
    assert "perpbot keys scope main --command run --allow trade,cancel" in line
    assert sim.state()["counters"]["requests"] == 0  # refused before any connection
    keys(kenv, "scope", "main", "--command", "run", "--allow", "trade,cancel", "--yes")
    keys(kenv, "scope", "main", "--symbols", "ETH/USDT:USDT")
    r = run_cli("run", str(toml), "--duration", "5", env=kenv)
    assert r.returncode == 3 and "--symbols ETH/USDT:USDT,BTC/USDT:USDT" in r.stderr
    assert sim.state()["counters"]["requests"] == 0
    other = strategy_toml(tmp_path, url=None, profile="main")  # embedded sim: profile unused
    text = other.read_text().replace('id = "sim"', 'id = "binanceusdm"')
    other.write_text(text)
    r = run_cli("run", str(other), "--duration", "5", env=kenv)
    assert r.returncode == 2 and "holds a key for exchange 'sim'" in r.stderr


def test_run_warns_when_the_audit_fails_and_audit_command(
    kenv: dict[str, str], tmp_path: Path, sim: Any
) -> None:
    key, secret = sim.create_account(permissions={"ipRestrict": False})
    add(kenv, "open", key, secret)
    keys(kenv, "scope", "open", "--command", "run", "--allow", "trade,cancel", "--yes")
    toml = strategy_toml(tmp_path, url=sim.base_url, profile="open")
    r = run_cli("run", str(toml), "--duration", "1", "--json", env=kenv)
    assert r.returncode == 0, r.stderr
    assert "warning: key audit of profile 'open' failed" in r.stderr
    assert "not restricted to trusted IP addresses" in r.stderr
    r = keys(kenv, "audit", "open", "--url", sim.base_url)
    assert r.returncode == 1 and "FAILED" in r.stdout and "FAIL  the key is not" in r.stdout
    key, secret = sim.create_account()
    add(kenv, "good", key, secret)
    keys(kenv, "scope", "good", "--command", "run", "--allow", "trade,cancel", "--yes")
    r = keys(kenv, "audit", "good", "--url", sim.base_url, "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True and doc["permissions"]["enableWithdrawals"] is False
    r = keys(kenv, "audit", "good")
    assert r.returncode == 2 and "--url" in r.stderr
    keys(kenv, "scope", "good", "--command", "keys audit", "--deny", "read")
    r = keys(kenv, "audit", "good", "--url", sim.base_url)
    assert r.returncode == 3 and "--command 'keys audit' --allow read" in r.stderr
