"""A stop that meets the strategy in the middle of a tick still runs on_stop and on_save.

The tick the stop meets is let land (its calls are refused from then on; it ends within
``CALLBACK_LAND_S``), then on_stop and on_save run as at any stop: what on_save returns is
kept for the next run. Before, a SIGTERM landing during a tick skipped both (the strategy
was "busy"): the state it would have saved was lost, and a first run saved none at all.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
import tomli_w

from tests.integration.kill_strategies.support import Bot, start_bot, wait_until

HERE = Path(__file__).resolve().parent


@pytest.mark.parametrize("isolation", ["thread", "process"])
def test_a_stop_met_mid_tick_lets_it_land_then_runs_on_stop_and_on_save(
    sim: object, tmp_path: Path, state_home: Path, bots: list[Bot], isolation: str
) -> None:
    doc = {
        "strategy": {
            "name": "slow",
            "file": str(HERE / "slow_tick.py"),
            "symbols": ["BTC/USDT:USDT"],
            "tick_interval": 0.05,
            "isolation": isolation,
        },
        "exchange": {"id": "sim", "url": sim.base_url},  # type: ignore[attr-defined]
        "audit": {"enabled": False},
    }
    toml = tmp_path / "slow.toml"
    toml.write_text(tomli_w.dumps(doc))
    bot = start_bot(toml, tmp_path, sim.create_account())  # type: ignore[attr-defined]
    bots.append(bot)
    wait_until(lambda: "tick 2 begins" in bot.out.read_text(), timeout=40)
    bot.signal(signal.SIGTERM)  # the second tick has 0.4 s left to run
    code, out, err = bot.finish()
    assert code == 0, err
    assert "on_stop ran" in out, out
    saved = json.loads((state_home / "strategies" / "slow.json").read_text())["state"]
    assert saved is not None and saved["ticks"] >= 2, saved
