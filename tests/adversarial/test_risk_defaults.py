"""Risk limits a run may not go without (perpbot.risk.defaults), as a user meets them: a
paper run without [risk] limits gets conservative ones from its balance (and says so), a
live run refuses to start without them unless accept_no_limits = true."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    HERE,
    orders_of,
    quiet_market,
    sim_env,
    write_strategy,
)
from tests.keys_support.backends import file_keyring_env

BTC = "BTC/USDT:USDT"
HUGE = {"mode": "idle", "orders_per_symbol": 0, "open_position": 2.5}  # ~150k USDT at market


def test_a_paper_run_without_limits_gets_defaults_from_its_balance(
    sim_factory: Any, tmp_path: Path
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()  # 10,000 USDT
    toml = write_strategy(
        tmp_path, sim.base_url, params=HUGE, strategy={"symbols": [BTC], "tick_interval": 0.2}
    )
    r = run_cli("run", str(toml), "--plain", "--duration", "2", env=sim_env(creds))
    assert "max_order_notional = 1000" in r.stderr and "max_position_notional = 5000" in r.stderr
    assert "derived from the balance 10,000.00 USDT" in r.stderr
    assert "Traceback" not in r.stderr
    assert orders_of(sim.state(), creds[0]) == [], "the 150k order must not reach the exchange"
    # explicitly accepted: the same order goes (the simulator's own margin check decides)
    accept = write_strategy(
        tmp_path,
        sim.base_url,
        params=HUGE,
        strategy={"symbols": [BTC], "tick_interval": 0.2},
        extra={"risk": {"accept_no_limits": True}},
        name="accept.toml",
    )
    r = run_cli("run", str(accept), "--plain", "--duration", "2", env=sim_env(creds))
    assert "max_order_notional" not in r.stderr
    assert orders_of(sim.state(), creds[0]) != []


def live_strategy(tmp_path: Path, risk: dict[str, Any] | None) -> Path:
    doc: dict[str, Any] = {
        "strategy": {"name": "live", "file": str(HERE / "hang.py"), "symbols": [BTC]},
        "exchange": {"id": "binanceusdm", "profile": "live", "timeout_ms": 1000},
        "retry": {"max_attempts": 1},  # offline: one failed connect shows it got that far
    }
    if risk is not None:
        doc["risk"] = risk
    path = tmp_path / "live.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def test_a_live_run_refuses_to_start_without_limits(tmp_path: Path) -> None:
    env = file_keyring_env(tmp_path / "keyring.json")
    env.update({"PERPBOT_API_KEY": "", "PERPBOT_API_SECRET": ""})
    r = run_cli(
        "keys", "add", "live", "--exchange", "binanceusdm", "--stdin",
        input="PBTESTKEY0000000000000000000000wxyz\nPBTESTSECRET000000000000000000000qrst\n",
        env=env,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_cli(
        "keys", "scope", "live", "--command", "run", "--allow", "trade,cancel", "--yes", env=env
    )
    assert r.returncode == 0, r.stderr
    for risk in (None, {}, {"max_leverage": 3}, {"enabled": False}):
        r = run_cli("run", str(live_strategy(tmp_path, risk)), "--plain", env=env)
        assert r.returncode == 2, (risk, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and "a live run on 'binanceusdm' needs risk limits" in lines[0]
        assert "accept_no_limits = true" in lines[0]
    # with limits (or accepted) it goes on to connect: offline, it cannot reach the host
    for risk in ({"max_order_notional": 100, "max_position_notional": 500},
                 {"accept_no_limits": True}):  # fmt: skip
        r = run_cli("run", str(live_strategy(tmp_path, risk)), "--plain", env=env)
        assert "needs risk limits" not in r.stderr
