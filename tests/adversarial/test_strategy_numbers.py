"""A strategy's bad numbers are refused at the order boundary (OrderRejected with
BAD_AMOUNT / BAD_PRICE, which it may catch), never sent: the simulator's own order list is
the truth. A decided price of 1.0 does not make a 150k order small."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomli_w

from tests.conftest import run_cli
from tests.integration.kill_strategies.support import orders_of, quiet_market, sim_env

HERE = Path(__file__).resolve().parent


def test_bad_numbers_never_reach_the_exchange(sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    doc = {
        "strategy": {
            "name": "bad-numbers",
            "file": str(HERE / "strategies" / "bad_numbers.py"),
            "symbols": ["BTC/USDT:USDT"],
            "tick_interval": 0.2,
        },
        "exchange": {"id": "sim", "url": sim.base_url},
        "risk": {"max_order_notional": 1000, "max_position_notional": 5000},
    }
    toml = tmp_path / "bad.toml"
    toml.write_text(tomli_w.dumps(doc))
    r = run_cli("run", str(toml), "--plain", "--duration", "2", env=sim_env(creds))
    assert r.returncode == 0, r.stderr[-2000:]
    refused = [line.split("refused ")[1] for line in r.stdout.splitlines() if "refused " in line]
    assert refused == ["BAD_AMOUNT"] * 4 + ["BAD_PRICE"] * 4 + ["RISK_MAX_ORDER_NOTIONAL"]
    assert "strategy: placed" not in r.stdout
    assert orders_of(sim.state(), creds[0]) == [], "nothing may reach the exchange"
