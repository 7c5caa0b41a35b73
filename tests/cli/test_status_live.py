"""`perpbot status --live PROFILE`: asks the exchange with the profile's ``read`` grant."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from perpbot.client.transport import make_exchange
from tests.conftest import run_cli
from tests.keys_support.backends import file_keyring_env

BTC = "BTC/USDT:USDT"


async def open_position(url: str, key: str, secret: str) -> None:
    ex = make_exchange("sim", api_key=key, secret=secret, base_url=url)
    try:
        await ex.load_markets()
        await ex.create_order(BTC, "market", "buy", 0.01)
    finally:
        await ex.close()


@pytest.fixture
def watcher(sim: Any, tmp_path: Path) -> tuple[dict[str, str], str, str]:
    key, secret = sim.create_account()
    asyncio.run(open_position(sim.base_url, key, secret))
    env = file_keyring_env(tmp_path / "keyring.json")
    r = run_cli("keys", "add", "watcher", "--exchange", "sim", "--stdin", env=env,
                input=f"{key}\n{secret}\n")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return env, key, secret


def test_live_reads_the_exchange_with_the_read_grant_only(
    sim: Any, watcher: tuple[dict[str, str], str, str], state_home: Path
) -> None:
    env, key, secret = watcher
    r = run_cli("status", "--live", "watcher", "--url", sim.base_url, "--json", env=env)
    assert r.returncode == 0, r.stderr
    live = json.loads(r.stdout)["live"]
    assert live["profile"] == "watcher" and live["exchange"] == "sim"
    (pos,) = [p for p in live["positions"] if p["amount"]]
    assert pos["symbol"] == BTC and pos["amount"] == pytest.approx(0.01)
    assert live["balance"]["total"] == pytest.approx(10_000, rel=0.01)
    assert secret not in r.stdout + r.stderr and key not in r.stdout + r.stderr
    logs = list((state_home / "logs").rglob("*.jsonl"))  # the reads are in a signed log
    assert logs and any("/fapi/v3/positionRisk" in p.read_text() for p in logs)

    r = run_cli("status", "--live", "watcher", env=env)
    assert r.returncode == 2 and "needs --url" in r.stderr

    deny = ("keys", "scope", "watcher", "--command", "status", "--deny", "read", "--yes")
    assert run_cli(*deny, env=env).returncode == 0
    r = run_cli("status", "--live", "watcher", "--url", sim.base_url, env=env)
    assert r.returncode == 3, r.stderr
    assert "Traceback" not in r.stderr and secret not in r.stderr
