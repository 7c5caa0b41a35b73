"""`perpbot kill` / `perpbot resume` as a user meets them: subprocesses, files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perpbot.fsutil import atomic_write_json
from perpbot.kill.acks import write_ack
from perpbot.kill.sentinel import read_history, read_sentinel
from tests.conftest import ROOT, run_cli

HEAVY = ("ccxt", "aiohttp", "pydantic", "rich", "typer")


def test_kill_writes_the_sentinel_without_importing_heavy_modules(state_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "perpbot", "kill", "--reason", "drill",
         "--wait", "0"],
        capture_output=True, text=True, cwd=str(ROOT), env=dict(os.environ), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    loaded_heavy = sorted(m for m in imported if m.split(".")[0] in HEAVY)
    assert loaded_heavy == []
    assert "kill switch set: level cancel for all bots: drill" in result.stdout
    doc = json.loads((state_home / "KILL").read_text())
    assert doc["level"] == "cancel" and doc["reason"] == "drill" and doc["scope"] == "all"
    assert doc["who"].count("@") == 1 and doc["pid"] > 0 and abs(doc["time"] - time.time()) < 60
    assert [e["id"] for e in doc["entries"]] == [doc["id"]]


# Runs the real entry point; records which perpbot modules are loaded at the moment the
# KILL file is renamed into place (the os.replace the bots then see) and at the end.
WRITE_PROBE = """
import json, os, sys
from pathlib import Path
from perpbot.cli.entry import main
seen = {}
real_replace = os.replace
def replace(src, dst, *args, **kwargs):
    real_replace(src, dst, *args, **kwargs)
    if Path(dst).name == "KILL" and "write" not in seen:
        seen["write"] = sorted(m for m in sys.modules if m.split(".")[0] == "perpbot")
os.replace = replace
try:
    main(sys.argv[1:])
except SystemExit as exc:
    seen["code"] = exc.code
seen["end"] = sorted(m for m in sys.modules if m.split(".")[0] == "perpbot")
print("SEEN", json.dumps(seen), flush=True)
"""

# What `perpbot kill` needs to write the switch; what waits and reports loads after it.
BEFORE_WRITE = {
    "perpbot", "perpbot.cli", "perpbot.cli.entry", "perpbot.cli.kill_fast", "perpbot.errors",
    "perpbot.fsutil", "perpbot.kill", "perpbot.kill.command", "perpbot.kill.sentinel",
    "perpbot.paths",
}  # fmt: skip
AFTER_WRITE = {"perpbot.kill.outcome", "perpbot.kill.acks", "perpbot.alerts.outbox"}


def test_the_kill_file_is_written_before_what_waits_and_reports_loads(state_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", WRITE_PROBE, "kill", "--reason", "drill", "--wait", "0"],
        capture_output=True, text=True, cwd=str(ROOT), env=dict(os.environ), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("SEEN "))
    seen = json.loads(line.removeprefix("SEEN "))
    assert seen["code"] == 0
    assert set(seen["write"]) <= BEFORE_WRITE, sorted(set(seen["write"]) - BEFORE_WRITE)
    assert set(seen["end"]) >= AFTER_WRITE  # they did load, after the write
    sentinel = read_sentinel()
    assert sentinel is not None and sentinel.reason == "drill"


def test_a_kill_never_lowers_the_level_and_scopes_add_up(state_home: Path) -> None:
    assert run_cli("kill", "--level", "flatten", "--wait", "0").returncode == 0
    lower = run_cli("kill", "--level", "halt", "--reason", "calmer", "--wait", "0", "--json")
    assert lower.returncode == 0
    doc = json.loads(lower.stdout)
    assert doc["entry"]["level"] == "flatten"
    assert run_cli("kill", "--level", "halt", "--profile", "main", "--wait", "0").returncode == 0
    sentinel = read_sentinel()
    assert sentinel is not None
    assert sorted((e.scope, e.level) for e in sentinel.entries) == [
        ("all", "flatten"),
        ("profile:main", "halt"),
    ]
    shown = run_cli("kill", "--show")
    assert shown.returncode == 0 and "level flatten for all bots" in shown.stdout
    assert "level halt for profile main" in shown.stdout


def test_clear_needs_yes_and_records_who_and_why(state_home: Path) -> None:
    assert run_cli("kill", "--reason", "fat finger", "--wait", "0").returncode == 0
    assert run_cli("kill", "--run", "grid", "--wait", "0").returncode == 0
    refused = run_cli("kill", "--clear")
    assert refused.returncode == 2
    assert len(refused.stderr.strip().splitlines()) == 1 and "--yes" in refused.stderr
    assert read_sentinel() is not None

    one = run_cli("resume", "--yes", "--run", "grid", "--reason", "grid fixed")
    assert one.returncode == 0, one.stderr
    assert "still set: level cancel for all bots" in one.stdout
    done = run_cli("kill", "--clear", "--yes", "--reason", "all clear")
    assert done.returncode == 0, done.stderr
    assert "fat finger" in done.stdout
    assert read_sentinel() is None and not (state_home / "KILL").exists()
    clears = [h for h in read_history() if h["event"] == "clear"]
    assert [c["reason"] for c in clears] == ["grid fixed", "all clear"]
    assert all(c["who"].count("@") == 1 for c in clears)
    assert run_cli("resume", "--yes").stdout.strip() == "the kill switch is not set"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["kill", "--level", "nuke"], "--level: got 'nuke', expected one of halt, cancel, flatten"),
        (["kill", "--wait", "-1"], "--wait: got -1, expected a number of seconds from 0 to 3600"),
        (["kill", "--wait", "nan"], "--wait: got nan, expected a number of seconds"),
        (["kill", "--profile", "a", "--run", "b"], "--profile and --run: give one of them"),
        (["kill", "--url", "http://127.0.0.1:1"], "--strategy, --url, --exchange and --symbol go"),
    ],
)
def test_bad_usage_is_one_line_exit_2(args: list[str], expected: str, state_home: Path) -> None:
    result = run_cli(*args)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"perpbot: error: {expected}")
    assert not (state_home / "KILL").exists()


def test_a_touched_kill_file_counts_as_cancel_for_every_bot(state_home: Path) -> None:
    (state_home / "KILL").touch()
    shown = run_cli("kill", "--show")
    assert "a KILL file is present but it is empty; treated as cancel for all bots" in shown.stdout
    refused = run_cli("run", str(ROOT / "strategies" / "grid.toml"), "--duration", "5")
    assert refused.returncode == 4
    assert "refusing to start grid: the kill switch is set" in refused.stderr
    assert "perpbot kill --clear --yes" in refused.stderr


def _fake_running_bot(state_home: Path, run_id: str) -> None:
    """A status file as a running bot writes it (its pid: this test process, alive)."""
    atomic_write_json(
        state_home / "bots" / f"{run_id}.json",
        {"run_id": run_id, "state": "running", "pid": os.getpid(), "strategy": "grid",
         "profile": None},
    )  # fmt: skip


def test_wait_reports_bots_that_do_not_acknowledge(state_home: Path) -> None:
    _fake_running_bot(state_home, "r-silent")
    result = run_cli("kill", "--wait", "0.3")
    assert result.returncode == 1
    assert "bot r-silent (grid, pid" in result.stdout
    assert "did not acknowledge within 0.3 s" in result.stderr
    assert "perpbot kill --direct" in result.stderr


def test_wait_prints_what_each_bot_did(state_home: Path) -> None:
    _fake_running_bot(state_home, "r-ok")
    set_it = run_cli("kill", "--wait", "0", "--json", "--run", "grid")
    sentinel_id = json.loads(set_it.stdout)["entry"]["id"]
    write_ack(
        "r-ok",
        {"run_id": "r-ok", "strategy": "grid", "pid": 42, "entry_id": sentinel_id,
         "level": "cancel", "state": "done", "acted_ms": 61.5,
         "cancelled": [{"symbol": "BTC/USDT:USDT"}] * 3, "closed": [], "errors": []},
    )  # fmt: skip
    result = run_cli("kill", "--run", "grid", "--wait", "2")
    assert result.returncode == 0, result.stderr
    assert (
        "bot r-ok (grid, pid 42) acknowledged level cancel in 62 ms; cancelled 3 order(s) on "
        "BTC/USDT:USDT" in result.stdout
    )


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--levle", "cancel"], "unrecognized arguments: --levle cancel"),
        (["--wait", "soon"], "argument --wait/-w: invalid float value: 'soon'"),
        (["--reason"], "argument --reason/-r: expected one argument"),
    ],
)
def test_the_fast_path_reports_bad_arguments_in_one_line(
    args: list[str], expected: str, state_home: Path
) -> None:
    result = run_cli("kill", *args)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [f"perpbot: error: perpbot kill: {expected}"]
    assert not (state_home / "KILL").exists()


def test_the_fast_path_takes_equals_and_short_forms(state_home: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "perpbot", "kill", "--level=halt",
         "-r", "drill", "-w", "0", "--run=grid", "--json"],
        capture_output=True, text=True, cwd=str(ROOT), env=dict(os.environ), timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    imported = {line.split("|")[-1].strip() for line in result.stderr.splitlines() if "|" in line}
    assert sorted(m for m in imported if m.split(".")[0] in HEAVY) == []
    entry = json.loads(result.stdout)["entry"]
    assert (entry["level"], entry["reason"], entry["scope"]) == ("halt", "drill", "run:grid")
