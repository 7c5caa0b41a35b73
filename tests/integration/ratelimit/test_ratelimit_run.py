"""`perpbot run` as a user meets it: the budget shows in ticks.jsonl, status and events."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ROOT, run_cli


def test_run_reports_budget_use_in_ticks_status_and_events(
    tmp_path: Path, state_home: Path
) -> None:
    toml = (ROOT / "strategies" / "grid.toml").read_text()
    toml += "\n[limits]\nsafety_margin = 0.1\nrefresh_s = 2\n"
    (tmp_path / "grid.toml").write_text(toml)
    (tmp_path / "grid.py").write_text((ROOT / "strategies" / "grid.py").read_text())
    result = run_cli("run", str(tmp_path / "grid.toml"), "--duration", "4")
    assert result.returncode == 0, result.stderr[-2000:]
    [run_dir] = list((state_home / "runs").iterdir())
    ticks = [json.loads(line) for line in (run_dir / "ticks.jsonl").read_text().splitlines()]
    assert ticks
    # every line has the weight figures; the first (and one every [disk] tick_detail_s) has
    # the whole rate section
    for tick in ticks:
        assert tick["rate"]["weight_nominal"] == 2400 and tick["rate"]["weight_limit"] == 2160
    rate = ticks[0]["rate"]
    assert rate["weight_window"] == "1m" and rate["weight_used"] > 0
    assert rate["source"] == "exchange" and rate["store"].startswith("sqlite ")
    assert "read from the exchange's exchangeInfo" in rate["last_change"]
    assert set(rate["orders"]) == {"10s", "1m"}
    status = json.loads(next((state_home / "bots").glob("*.json")).read_text())
    assert status["snapshot"]["extras"]["rate"]["weight_nominal"] == 2400
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    loaded = [e for e in events if e.get("code") == "RATE_RULES_LOADED"]
    assert loaded and loaded[0]["layer"] == "ratelimit"
