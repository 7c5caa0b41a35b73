"""`redis` and `matplotlib` are optional extras: without them, one line naming the extra.

The packages are hidden from a real `perpbot` subprocess by a module of the same name, first
on its path, that fails to import (as a missing package does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.integration.kill_strategies.support import quiet_market, sim_env, write_strategy
from tests.unit.report.report_synth import build_run


def hide(tmp_path: Path, *packages: str) -> dict[str, str]:
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    for name in packages:
        (shadow / f"{name}.py").write_text(f"raise ImportError('no module named {name}')\n")
    return {"PYTHONPATH": str(shadow)}


def assert_one_line_hint(result: Any, hint: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and hint in lines[0], result.stderr
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.timeout(120)
def test_a_redis_store_without_the_redis_extra(sim_factory: Any, tmp_path: Path) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    toml = write_strategy(
        tmp_path, sim.base_url, extra={"limits": {"store": "redis://127.0.0.1:6379/0"}}
    )
    env = {**sim_env(creds), **hide(tmp_path, "redis")}
    result = run_cli("run", str(toml), "--duration", "2", "--plain", env=env)
    assert_one_line_hint(result, "pip install 'perpbot[redis]'")
    assert sim.state()["open_orders"] == []  # nothing was sent without a budget


def test_a_report_without_the_report_extra(tmp_path: Path) -> None:
    build_run("20250615-120000-grid-abc123")
    result = run_cli("report", "last", env=hide(tmp_path, "matplotlib"))
    assert_one_line_hint(result, "pip install 'perpbot[report]'")
    with_it = run_cli("report", "last", "--json")
    assert with_it.returncode == 0, with_it.stderr
