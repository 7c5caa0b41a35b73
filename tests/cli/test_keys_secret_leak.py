"""No key or secret in any output or file: add, scope, show, run, kill, audit and a forced
traceback, with recognisable credentials, through the CLI as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tests.keys_support.backends import ENV_FAULT, file_keyring_env
from tests.keys_support.profiles import strategy_toml

LEAK_KEY = "LEAKTESTKEY7f3a9c2e5b8d1f4a6c9e2b5d8f1a4c7e"
LEAK_SECRET = "LEAKTESTSECRET2d5f8a1c4e7b9d2f5a8c1e4b7d9f2a"


def fragments(secret: str, width: int = 12) -> set[str]:
    """Every 12-character window: catches a secret printed in part, not only whole."""
    return {secret[i : i + width] for i in range(len(secret) - width + 1)}


def test_no_secret_in_outputs_files_or_tracebacks(
    tmp_path: Path, state_home: Path, sim: Any
) -> None:
    env = file_keyring_env(tmp_path / "keyring.json")  # outside the state dir, by design
    sim_key, sim_secret = sim.create_account()
    outputs: list[str] = []

    def cli(*args: str, input: str | None = None, extra: dict[str, str] | None = None) -> Any:
        r = run_cli(*args, env={**env, **(extra or {})}, input=input)
        outputs.extend([r.stdout, r.stderr])
        return r

    # a recognisable key the simulator does not know, and the simulator's own key
    r = cli("keys", "add", "leak", "-e", "sim", "--stdin", input=f"{LEAK_KEY}\n{LEAK_SECRET}\n")
    assert r.returncode == 0, r.stderr
    sim_env = {"PERPBOT_API_KEY": sim_key, "PERPBOT_API_SECRET": sim_secret}
    assert cli("keys", "add", "good", "--exchange", "sim", extra=sim_env).returncode == 0
    for name in ("leak", "good"):
        r = cli("keys", "scope", name, "--command", "run", "--allow", "trade,cancel", "--yes")
        assert r.returncode == 0, r.stderr
    r = cli("keys", "scope", "leak", "--command", "kill", "--allow", "cancel,reduce")
    assert r.returncode == 0, r.stderr
    assert cli("keys", "show", "leak").returncode == 0
    assert cli("keys", "list", "--json").returncode == 0
    # run, verbose: the unknown key fails authentication (an error path), the good one trades
    bad = strategy_toml(tmp_path, url=sim.base_url, profile="leak", name="bad")
    r = cli("-v", "run", str(bad), "--duration", "1")
    assert r.returncode == 1, r.stderr
    good = strategy_toml(tmp_path, url=sim.base_url, profile="good")
    r = cli("-v", "run", str(good), "--duration", "1")
    assert r.returncode == 0, r.stderr
    # audit, verbose: both keys
    assert cli("-v", "keys", "audit", "leak", "--url", sim.base_url).returncode == 1
    assert cli("-v", "keys", "audit", "good", "--url", sim.base_url, "--json").returncode == 0
    # a forced traceback: the keyring crashes while the profile (with its secret) is loaded
    r = cli("keys", "scope", "leak", "--max-leverage", "2", extra={ENV_FAULT: "crash-set"})
    assert r.returncode == 1 and "internal error" in r.stderr
    crashes = list(state_home.glob("crash-*.txt"))
    assert crashes and "Traceback" in crashes[0].read_text()
    shown = json.loads(cli("keys", "show", "leak", "--json").stdout)
    assert shown["limits"]["max_leverage"] is None  # the failed write left the profile intact
    # kill --direct (last: the sentinel it leaves would stop later runs)
    r = cli("-v", "kill", "--direct", "--profile", "leak", "--url", sim.base_url, "--wait", "0")
    assert r.returncode != 0  # the exchange refuses the unknown key

    files = [p for p in state_home.rglob("*") if p.is_file()]
    assert any(p.suffix == ".jsonl" for p in files), "the runs should have written journals"
    haystacks = {f"output #{i}": text for i, text in enumerate(outputs)}
    for p in files:
        haystacks[str(p.relative_to(state_home))] = p.read_bytes().decode("utf-8", "replace")
    for secret in (LEAK_KEY, LEAK_SECRET, sim_key, sim_secret):
        needles = fragments(secret)
        for where, text in haystacks.items():
            hits = [n for n in needles if n in text]
            assert not hits, f"part of a credential appears in {where}"
