"""SIGKILL a bot mid-run: the log shows at most a torn tail, and the next run continues it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from perpbot.audit.canonical import line_hash
from tests.conftest import ROOT, run_cli

ENV = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def _wait_for_orders(logs: Path, proc: subprocess.Popen[str], timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for path in logs.glob("*/audit-0001.jsonl"):
            data = path.read_bytes()
            if data.count(b'"method":"create_order"') >= 2 and data.count(b"\n") > 30:
                return path
        time.sleep(0.1)
    raise AssertionError("the bot logged no orders in time")


def test_sigkill_leaves_at_most_a_torn_tail_and_the_next_run_continues(
    state_home: Path,
) -> None:
    env = {**os.environ, **ENV, "PERPBOT_HOME": str(state_home)}
    grid = str(ROOT / "strategies" / "grid.toml")
    proc = subprocess.Popen(
        [sys.executable, "-m", "perpbot", "run", grid, "--plain"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        log = _wait_for_orders(state_home / "logs", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert b'"kind":"close"' not in log.read_bytes()

    verified = run_cli("log", "verify", "--accept-unanchored", env=ENV)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "intact" in verified.stdout and "DAMAGED" not in verified.stdout

    # a power cut can also leave half a line: that is a torn tail, not tampering
    with open(log, "ab") as fh:
        fh.write(b'{"seq":100000,"prev":"0123","kind":"exchange","meth')
    verified = run_cli("log", "verify", "--accept-unanchored", env=ENV)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "torn tail" in verified.stdout

    intact = log.read_bytes().split(b"\n")[:-1]
    last = json.loads(intact[-1])
    again = run_cli("run", grid, "--duration", "1", "--json", env=ENV)
    assert again.returncode == 0, again.stderr
    new_dir = Path(json.loads(again.stdout)["audit"]["log"])
    opened = json.loads((new_dir / "audit-0001.jsonl").read_bytes().split(b"\n")[0])
    assert opened["prev"] == line_hash(intact[-1])  # continues after the last intact record
    assert opened["link"]["run"] == log.parent.name and opened["link"]["seq"] == last["seq"]
    if "sig" not in last:  # the killed bot had records not yet sealed by a checkpoint
        assert opened["recovered"]["torn"] is True
        assert "continuing the chain after its last intact record" in again.stderr

    verified = run_cli("log", "verify", "--accept-unanchored", "--json", env=ENV)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["runs"] == 2
    assert [n for n in report["notes"] if "torn tail" not in n] == []
