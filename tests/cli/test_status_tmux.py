"""`perpbot status --watch` on a real terminal (tmux) against a running paper bot: the screen
shows the position, the rate budget and an alert, refreshes, and Ctrl-C leaves with 0."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

TMUX = shutil.which("tmux")
pytestmark = pytest.mark.skipif(TMUX is None, reason="tmux is not installed: screen test skipped")

STRATEGY = """
from perpbot.engine import Strategy


class Opener(Strategy):
    def on_start(self, ctx):
        ctx.market_order("BTC/USDT:USDT", "buy", 0.002)
"""

TOML = """
[strategy]
name = "opener"
file = "opener.py"
symbols = ["BTC/USDT:USDT"]
tick_interval = 0.3

[exchange]
id = "sim"
url = "{url}"

[audit]
enabled = false

[monitor]
poll_interval_s = 0.3

[monitor.mark_index]
enabled = true
max_bps = 0.1
"""


def wait_for(pred: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.2)


@pytest.fixture
def paper_bot(sim: Any, tmp_path: Path, state_home: Path) -> Iterator[subprocess.Popen[str]]:
    key, secret = sim.create_account()
    (tmp_path / "opener.py").write_text(STRATEGY)
    (tmp_path / "opener.toml").write_text(TOML.format(url=sim.base_url))
    env = dict(os.environ, PERPBOT_SIM_API_KEY=key, PERPBOT_SIM_API_SECRET=secret)
    log = (tmp_path / "bot.log").open("w")
    cmd = [sys.executable, "-m", "perpbot", "run", str(tmp_path / "opener.toml"), "--plain"]
    proc = subprocess.Popen(
        [*cmd, "--duration", "90"], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        log.close()


def published(state_home: Path) -> dict[str, Any] | None:
    for path in (state_home / "bots").glob("*.json"):
        try:
            doc = json.loads(path.read_text())
        except ValueError:
            continue
        risk = doc.get("snapshot", {}).get("extras", {}).get("risk", {})
        if doc.get("positions") and risk.get("alerts"):
            return doc
    return None


def test_watch_shows_positions_budget_and_alerts(
    paper_bot: subprocess.Popen[str], state_home: Path
) -> None:
    wait_for(lambda: published(state_home), "the bot published a position and an alert")
    assert TMUX is not None
    sock = f"perpbot-test-{uuid.uuid4().hex[:8]}"
    tmux = [TMUX, "-L", sock, "-f", os.devnull]
    status = (
        f"env PERPBOT_HOME={shlex.quote(str(state_home))} {shlex.quote(sys.executable)} "
        "-m perpbot status --watch --interval 0.5"
    )
    # A shell reports the exit code on the screen once the dashboard is gone; its trap keeps
    # Ctrl-C (sent to the whole foreground group) from ending the shell itself.
    script = f"trap 'true' INT; {status}; echo perpbot-exit=$?; sleep 60"
    watch = f"sh -c {shlex.quote(script)}"
    subprocess.run([*tmux, "new-session", "-d", "-s", "s", "-x", "150", "-y", "45", watch],
                   check=True, cwd=ROOT)  # fmt: skip
    try:

        def screen() -> str:
            r = subprocess.run([*tmux, "capture-pane", "-p", "-t", "s"], capture_output=True)
            return r.stdout.decode("utf-8", "replace")

        wanted = (
            "BTC/USDT:USDT long 0.002",
            "weight ",
            "last limit change",
            "MONITOR_MARK_INDEX",
            "RUNNING",
        )
        text = wait_for(
            lambda: (s := screen()) and all(w in s for w in wanted) and s,
            f"the screen showing {wanted}",
        )
        assert "opener" in text and "kill switch: clear" in text
        first = text.split("\n", 1)[0]
        wait_for(lambda: screen().split("\n", 1)[0] != first, "the clock in the header ticking")

        subprocess.run([*tmux, "send-keys", "-t", "s", "C-c"], check=True)
        left = wait_for(
            lambda: "perpbot-exit=" in (s := screen()) and s,
            "status --watch leaving on Ctrl-C",
        )
        assert "perpbot-exit=0" in left, left
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
