"""`perpbot kill --direct`: acting on the exchange when the bot cannot (wedged, or gone)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ccxt
import pytest

from perpbot.client.loopback import configure_loopback
from tests.conftest import ROOT, run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    now_ms,
    open_orders_of,
    orders_of,
    position_of,
    sim_env,
    start_bot,
    wait_until,
)


def test_direct_cancels_for_a_wedged_bot(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(params={"mode": "idle", "orders_per_symbol": 5})
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 10, timeout=30)
    bot.signal(signal.SIGSTOP)  # wedged: its watchdog cannot act

    result = run_cli(
        "kill", "--direct", "--url", sim.base_url, "--wait", "1", "--reason", "wedged",
        env=sim_env(creds),
    )  # fmt: skip
    assert result.returncode == 1, result.stderr
    assert f"direct on {sim.base_url}: cancelled 10 order(s)" in result.stdout
    assert "did not acknowledge within 1 s" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert open_orders_of(sim.state(), creds[0]) == []

    bot.signal(signal.SIGCONT)  # it wakes up under the sentinel: it acts (nothing left), stops
    code, out, err = bot.finish()
    assert code == 4, err
    assert "KILL_DONE" in out


@pytest.fixture
def sim_serve(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A `perpbot sim serve` subprocess with a quiet market; its JSON line."""
    cfg = tmp_path / "sim.toml"
    cfg.write_text(
        "seed = 3\n[market]\nvolatility = 0.0\njump_rate = 0.0\ntaker_rate = 0.0\n"
        "history_minutes = 30\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "perpbot", "sim", "serve", "--config", str(cfg)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=str(ROOT),
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        yield json.loads(line)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)


def _state(base_url: str) -> dict[str, Any]:
    with urllib.request.urlopen(base_url + "/__sim/state", timeout=10) as resp:
        return json.loads(resp.read())


def test_direct_flatten_with_no_bot_against_sim_serve(sim_serve: dict[str, Any]) -> None:
    url, key, secret = sim_serve["base_url"], sim_serve["api_key"], sim_serve["api_secret"]
    ex = ccxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
    configure_loopback(ex, url)
    ex.load_markets()
    ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    ex.create_order("ETH/USDT:USDT", "market", "sell", 0.05)
    ex.create_order("BTC/USDT:USDT", "limit", "buy", 0.002, 58000.0)
    ex.create_order("ETH/USDT:USDT", "limit", "sell", 0.05, 3100.0)
    assert len(open_orders_of(_state(url), key)) == 2

    killed_at = now_ms()
    result = run_cli(
        "kill", "--level", "flatten", "--direct", "--url", url, "--wait", "0",
        env={"PERPBOT_SIM_API_KEY": key, "PERPBOT_SIM_API_SECRET": secret},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "cancelled 2 order(s) on BTC/USDT:USDT, ETH/USDT:USDT" in result.stdout
    assert "closed BTC/USDT:USDT +0.01 -> +0" in result.stdout
    assert "closed ETH/USDT:USDT -0.05 -> +0" in result.stdout

    state = _state(url)
    assert position_of(state, key, "BTCUSDT") == 0.0
    assert position_of(state, key, "ETHUSDT") == 0.0
    assert open_orders_of(state, key) == []
    placed = [o for o in orders_of(state, key) if o["time"] >= killed_at]
    assert placed and all(o["reduceOnly"] for o in placed)
    assert all(o["clientOrderId"].startswith("pbk-") for o in placed)


def test_direct_needs_something_to_act_on(tmp_path: Path) -> None:
    result = run_cli("kill", "--direct", "--wait", "0")
    assert result.returncode == 2
    assert "nothing to act on" in result.stderr
    result = run_cli("kill", "--direct", "--url", "http://127.0.0.1:9", "--wait", "0")
    assert result.returncode == 2
    assert "PERPBOT_SIM_API_KEY" in result.stderr
    result = run_cli(
        "kill", "--direct", "--run", "ghost", "--url", "http://127.0.0.1:9", "--wait", "0",
        env=sim_env(("k", "s")),
    )  # fmt: skip
    assert result.returncode == 2
    assert "no record of run:ghost in the state dir" in result.stderr
