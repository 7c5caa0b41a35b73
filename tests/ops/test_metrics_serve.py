"""`perpbot metrics serve`: one exporter for the bots on this machine, from status files."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import tomli_w
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, run_cli
from tests.ops.receivers import wait_until


def _scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(text)
        for s in f.samples
    }


def _names(samples: dict[Any, float]) -> set[str]:
    return {name for name, _ in samples}


def test_serve_exports_a_running_bot_and_drops_it_when_it_ends(
    tmp_path: Path, state_home: Path
) -> None:
    doc = tomllib.loads((ROOT / "strategies" / "grid.toml").read_text())
    doc["strategy"]["file"] = str(ROOT / "strategies" / "grid.py")
    toml = tmp_path / "grid.toml"
    toml.write_text(tomli_w.dumps(doc))
    env = dict(os.environ)
    bot = subprocess.Popen(
        [sys.executable, "-m", "perpbot", "run", str(toml), "--duration", "15", "--plain"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=str(ROOT), env=env,
    )  # fmt: skip
    exporter = subprocess.Popen(
        [sys.executable, "-m", "perpbot", "metrics", "serve", "--port", "0", "--duration", "90"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT), env=env,
    )  # fmt: skip
    try:
        assert exporter.stdout is not None
        line = exporter.stdout.readline()
        assert line.startswith("perpbot metrics on http://127.0.0.1:"), line
        url = line.split()[-1]

        def with_bot() -> dict[Any, float] | None:
            s = _scrape(url)
            return s if ("perpbot_equity_usdt", (("bot", "grid"), ("exchange", "sim"),
                         ("host", "sim"))) in s else None  # fmt: skip

        samples = wait_until(with_bot, timeout=60, interval=0.5)
        assert "perpbot_bot_up" in _names(samples)
        assert {"perpbot_position_contracts", "perpbot_mark_price", "perpbot_pnl_usdt",
                "perpbot_weight_limit", "perpbot_kill_active"} <= _names(samples)  # fmt: skip
        assert not {"perpbot_http_429_total", "perpbot_decisions_total"} & _names(samples)
        _, err = bot.communicate(timeout=90)
        assert bot.returncode == 0, err
        after = _scrape(url)
        assert "perpbot_bot_up" not in _names(after)
        assert "perpbot_equity_usdt" not in _names(after)
    finally:
        for p in (bot, exporter):
            if p.poll() is None:
                p.terminate()
                p.wait(10)


def test_serve_bad_input() -> None:
    r = run_cli("metrics", "serve", "--port", "70000")
    assert r.returncode == 2 and "expected 0-65535" in r.stderr
