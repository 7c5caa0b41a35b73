"""Scrape a paper run's /metrics while it trades on the embedded simulator."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import tomli_w
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT
from tests.ops.receivers import wait_until


def _grid_toml(tmp_path: Path, metrics: dict[str, Any]) -> Path:
    doc = tomllib.loads((ROOT / "strategies" / "grid.toml").read_text())
    doc["strategy"]["file"] = str(ROOT / "strategies" / "grid.py")
    doc["metrics"] = metrics
    path = tmp_path / "grid.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _find(samples: dict[Any, float], name: str, **labels: str) -> list[float]:
    return [
        v
        for (n, lab), v in samples.items()
        if n == name and all(dict(lab).get(k) == want for k, want in labels.items())
    ]


def _serving_port(home: Path) -> int | None:
    for events in (home / "runs").glob("*/events.jsonl"):
        for line in events.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("code") == "METRICS_SERVING":
                return int(rec["data"]["port"])
    return None


def test_scrape_during_a_paper_grid_run(tmp_path: Path, state_home: Path) -> None:
    textfile = tmp_path / "perpbot.prom"
    toml = _grid_toml(tmp_path, {"port": 0, "textfile": str(textfile)})
    proc = subprocess.Popen(
        [sys.executable, "-m", "perpbot", "run", str(toml), "--duration", "25", "--plain"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        cwd=str(ROOT),
        env=dict(os.environ),
    )
    try:
        port = wait_until(lambda: _serving_port(state_home), timeout=60)
        url = f"http://127.0.0.1:{port}/metrics"

        def scraped() -> dict[Any, float] | None:
            s = _samples(urllib.request.urlopen(url, timeout=5).read().decode())
            placed = _find(s, "perpbot_orders_total", kind="create", outcome="ok")
            ticked = _find(s, "perpbot_equity_usdt")
            streamed = _find(s, "perpbot_stream_lag_seconds", stream="mark BTC/USDT:USDT")
            return s if placed and placed[0] >= 3 and ticked and streamed else None

        samples = wait_until(scraped, timeout=60, interval=0.5)
    finally:
        _, err = proc.communicate(timeout=90)
    assert proc.returncode == 0, err
    base = {"bot": "grid", "exchange": "sim", "host": "embedded-sim"}
    assert _find(samples, "perpbot_run_info", **base)[0] == 1
    assert _find(samples, "perpbot_exchange_requests_total", method="create_order", outcome="ok")
    assert _find(samples, "perpbot_http_429_total", **base) == [0.0]
    assert _find(samples, "perpbot_http_418_total", **base) == [0.0]
    assert _find(samples, "perpbot_position_contracts", symbol="BTC/USDT:USDT")
    assert _find(samples, "perpbot_mark_price", symbol="BTC/USDT:USDT")[0] > 0
    assert _find(samples, "perpbot_equity_usdt")[0] > 0
    assert len(_find(samples, "perpbot_pnl_usdt", **base)) == 4
    assert _find(samples, "perpbot_kill_active", **base) == [0.0]
    assert _find(samples, "perpbot_weight_limit")[0] > 0
    assert _find(samples, "perpbot_exchange_weight_used")[0] > 0
    decisions = _find(samples, "perpbot_decisions_total", code="METRICS_SERVING")
    assert decisions == [1.0]
    assert _find(samples, "perpbot_exchange_request_seconds_count")[0] > 0
    # the run is on streams (the simulator's default): each stream's health is a series
    mark_stream = {"stream": "mark BTC/USDT:USDT"}
    assert _find(samples, "perpbot_stream_up", **mark_stream) == [1.0]
    assert 0 <= _find(samples, "perpbot_stream_lag_seconds", **mark_stream)[0] < 30
    assert _find(samples, "perpbot_stream_up", stream="user orders")
    # the textfile collector's file holds the final figures, in the same names
    final = _samples(textfile.read_text())
    assert _find(final, "perpbot_orders_total", kind="create", outcome="ok")[0] >= 3
    assert _find(final, "perpbot_orders_total", kind="cancel_all", outcome="ok") or _find(
        final, "perpbot_orders_total", kind="cancel", outcome="ok"
    )
