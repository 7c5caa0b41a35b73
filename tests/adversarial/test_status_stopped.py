"""`perpbot status --all` shows a stopped bot as it ended (its summary.json), not its last
status snapshot from before the stop: checked against the simulator's own state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    open_orders_of,
    position_of,
    quiet_market,
    sim_env,
    write_strategy,
)

BTC = "BTC/USDT:USDT"


def test_status_all_shows_a_stopped_bot_as_it_ended(
    sim_factory: Any, tmp_path: Path, state_home: Path
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    toml = write_strategy(
        tmp_path,
        sim.base_url,
        params={"mode": "idle", "orders_per_symbol": 2, "open_position": 0.003},
        strategy={"symbols": [BTC], "tick_interval": 0.2},
        extra={"risk": {"accept_no_limits": True}},
    )
    r = run_cli("run", str(toml), "--plain", "--duration", "2", env=sim_env(creds))
    assert r.returncode == 0, r.stderr[-2000:]
    (bot_file,) = (state_home / "bots").glob("*.json")
    doc = json.loads(bot_file.read_text())
    # the snapshot as a still-running bot last wrote it: positions and orders it had then
    doc["state"] = "running"
    doc["positions"] = {BTC: {"amount": 5.0, "entry_price": 1.0}}
    doc["open_orders"] = 7
    doc["snapshot"] = {**(doc.get("snapshot") or {}), "orders": {"open": 7}, "net_pnl": 1e6}
    bot_file.write_text(json.dumps(doc))
    summary = json.loads((state_home / "runs" / doc["run_id"] / "summary.json").read_text())

    r = run_cli("status", "--all", "--json")
    assert r.returncode == 0, r.stderr
    (bot,) = json.loads(r.stdout)["bots"]
    assert bot["state"] == "stopped" and bot["final"] is True
    assert bot["end_reason"] == summary["end_reason"] == "duration"
    state = sim.state()
    truth = position_of(state, creds[0], "BTCUSDT")
    shown = {p["symbol"]: p["amount"] for p in bot["positions"]}
    assert shown == ({BTC: truth} if truth else {})
    assert bot["open_orders"] == []
    assert bot["orders"] == summary["orders"]
    assert bot["orders"]["open"] == len(open_orders_of(state, creds[0]))
    assert bot["pnl"]["net_pnl"] == summary["net_pnl"] != 1e6
    r = run_cli("status", "--all")
    assert r.returncode == 0 and "STOPPED" in r.stdout and "0 running" in r.stdout
    assert "5 BTC" not in r.stdout and "1,000,000" not in r.stdout
    assert run_cli("status", "--json").stdout.count(doc["run_id"]) == 0  # not without --all
