"""The hostile-strategy corpus (tests/adversarial/hostile_strategies/): with ``[strategy]
isolation = "process"``, every attack fails, the run goes on and ends cleanly, the secret
shows up nowhere, and the simulator's own state shows that nothing but the engine's own
reads reached it (no order, no algo order, no position, no leverage or margin change).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from tests.conftest import run_cli

CORPUS = Path(__file__).resolve().parent / "hostile_strategies"
BTC = "BTC/USDT:USDT"
ATTACKS = {
    "credentials": 4,
    "files": 4,
    "gc_walk": 3,
    "internals": 3,
    "network": 4,
    "processes": 5,
    "protocol": 5,
}
WRITES = {  # what changes an account (the engine's dead-man countdown and user stream aside)
    "/fapi/v1/order", "/fapi/v1/batchOrders", "/fapi/v1/allOpenOrders", "/fapi/v1/leverage",
    "/fapi/v1/marginType", "/fapi/v1/algoOrder", "/fapi/v1/algoOpenOrders",
}  # fmt: skip


def run(
    tmp_path: Path,
    sim: Any,
    creds: tuple[str, str],
    strategy: dict[str, Any],
    duration: str,
    **sections: Any,
) -> subprocess.CompletedProcess[str]:
    """`perpbot run` of ``strategy`` on BTC against ``sim`` (plus any other sections)."""
    doc = {
        "strategy": {"symbols": [BTC], **strategy},
        "exchange": {"id": "sim", "url": sim.base_url},
        **sections,
    }
    toml = tmp_path / "hostile.toml"
    toml.write_text(tomli_w.dumps(doc))
    return run_cli(
        "run", str(toml), "--duration", duration, "--plain",
        env={"PERPBOT_SIM_API_KEY": creds[0], "PERPBOT_SIM_API_SECRET": creds[1]},
    )  # fmt: skip


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_every_attack_fails_and_nothing_reaches_the_exchange(
    tmp_path: Path, sim: Any, state_home: Path, name: str
) -> None:
    key, secret = sim.create_account()
    planted = tmp_path / "keyring_pass.cfg"  # where a file keyring would keep a secret
    planted.write_text(f"[perpbot]\nsim = {secret}\n")
    strategy = {
        "name": f"hostile-{name}".replace("_", "-"),
        "file": str(CORPUS / f"{name}.py"),
        "tick_interval": 0.5,
        "isolation": "process",
        "params": {
            "url": sim.base_url,
            "state_dir": str(state_home),
            "planted": str(planted),
            "engine_home": str(Path.home()),
        },
    }
    result = run(tmp_path, sim, (key, secret), strategy, "8", audit={"enabled": False})
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "ATTACKS DONE" in out, out
    assert "SUCCEEDED" not in out, out
    assert out.count("ATTACK ") == ATTACKS[name], out
    logs = "".join(p.read_text() for p in (state_home / "runs").glob("*/*") if p.is_file())
    assert secret not in out and secret not in logs
    (meta,) = (state_home / "runs").glob("*/meta.json")
    confinement = json.loads(meta.read_text())["confinement"]
    assert confinement["seccomp"] and confinement["files_hidden"], confinement
    assert "perpbot: warning: the state dir" not in out  # (it lies outside what it can read)

    state = sim.state()
    assert not [o for o in state["orders"] if o["account"] == key]
    assert not [o for o in state["algo_orders"] if o.get("account") == key]
    (account,) = [a for a in state["accounts"] if a["api_key"] == key]
    assert not any(float(p.get("positionAmt") or 0) for p in _positions(account))
    paths = state["counters"]["per_path"]
    assert not WRITES & set(paths), sorted(paths)
    # positionSide/dual is read (GET) by the engine at start; a switch would show here
    assert account["dual_side_position"] is False


def _positions(account: dict[str, Any]) -> list[dict[str, Any]]:
    positions = account.get("positions") or []
    return list(positions.values()) if isinstance(positions, dict) else positions


def test_a_thread_strategy_that_calls_ccxt_itself_is_refused_at_the_wire(
    tmp_path: Path, sim: Any, state_home: Path
) -> None:
    """``isolation = "thread"`` gives the strategy the engine's memory: it can reach the
    ccxt object. HTTP that did not come through the pipeline is refused at the wire
    (UNGUARDED_HTTP), so nothing it sends that way reaches the exchange."""
    key, secret = sim.create_account()
    strategy = {
        "name": "raw-ccxt",
        "file": str(CORPUS.parent / "strategies" / "raw_ccxt.py"),
        "isolation": "thread",
    }
    result = run(tmp_path, sim, (key, secret), strategy, "3")
    out = result.stdout + result.stderr
    assert "RAW DONE" in out and "SUCCEEDED" not in out, out
    for name in ("create_order", "set_leverage", "fetch_balance"):
        assert f"RAW {name} blocked: PermissionDenied: refused" in out, out
    state = sim.state()
    assert not [o for o in state["orders"] if o["account"] == key]
    assert not WRITES & set(state["counters"]["per_path"])
    decisions = "".join(p.read_text() for p in (state_home / "runs").glob("*/*.jsonl"))
    assert "UNGUARDED_HTTP" in decisions
