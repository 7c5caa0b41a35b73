"""Run files compressed and still read, runs pruned, the disk-space trip."""

from __future__ import annotations

import gzip
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from perpbot.config import DiskSection
from perpbot.errors import BadInput
from perpbot.events import Decision, EventBus
from perpbot.identity import RunIdentity
from perpbot.ops.disk import MB, DiskMonitor
from perpbot.ops.prune import parse_duration, prune_runs
from perpbot.report.data import load_run
from perpbot.runfiles import compress_run, open_journal
from tests.conftest import run_cli

ID = RunIdentity.of(run_id="r1", bot="grid", exchange="sim", url=None)


def _run(home: Path, run_id: str, ended_at: float | None, ticks: int = 50) -> Path:
    d = home / "runs" / run_id
    d.mkdir(parents=True)
    (d / "meta.json").write_text(json.dumps({"run_id": run_id, "started_at": 1.0}))
    with open(d / "ticks.jsonl", "w") as fh:
        for i in range(ticks):
            fh.write(json.dumps({"ts": 1.0 + i, "marks": {"BTC/USDT:USDT": 50000 + i}}) + "\n")
    (d / "events.jsonl").write_text(
        json.dumps(
            {"ts": 2.0, "layer": "kill", "action": "trip", "code": "KILL_X", "sentence": "s"}
        )
        + "\n"
    )
    if ended_at is not None:
        (d / "summary.json").write_text(json.dumps({"run_id": run_id, "ended_at": ended_at}))
    return d


def test_compressed_run_reads_the_same(state_home: Path) -> None:
    d = _run(state_home, "r-a", ended_at=time.time())
    before = load_run(d)
    saved = compress_run(d)
    assert saved > 0 and not (d / "ticks.jsonl").exists() and (d / "ticks.jsonl.gz").exists()
    after = load_run(d)
    assert after.ticks == before.ticks and after.events == before.events and len(after.ticks) == 50
    assert not after.notes or after.notes == before.notes
    # lines appended after compression become a second gzip member, nothing is lost
    (d / "events.jsonl").write_text(json.dumps({"ts": 3.0, "code": "LATE"}) + "\n")
    compress_run(d)
    with open_journal(d / "events.jsonl") as fh:
        codes = [json.loads(line)["code"] for line in fh]
    assert codes == ["KILL_X", "LATE"]


def test_truncated_gzip_reads_up_to_the_damage(state_home: Path) -> None:
    d = _run(state_home, "r-t", ended_at=time.time(), ticks=5000)
    compress_run(d)
    gz = d / "ticks.jsonl.gz"
    gz.write_bytes(gz.read_bytes()[: gz.stat().st_size // 2])
    run = load_run(d)
    assert 0 < len(run.ticks) < 5000
    assert "ticks.jsonl" in run.torn


def test_prune_keeps_recent_and_live_runs(state_home: Path) -> None:
    now = time.time()
    old = _run(state_home, "r-old", ended_at=now - 100 * 86400)
    recent = _run(state_home, "r-new", ended_at=now - 86400)
    crashed = _run(state_home, "r-crash", ended_at=None)
    os.utime(crashed / "ticks.jsonl", (now - 200 * 86400,) * 2)
    os.utime(crashed / "events.jsonl", (now - 200 * 86400,) * 2)
    os.utime(crashed / "meta.json", (now - 200 * 86400,) * 2)
    live = _run(state_home, "r-live", ended_at=None)
    for p in live.iterdir():
        os.utime(p, (now - 200 * 86400,) * 2)
    (state_home / "bots").mkdir(exist_ok=True)
    (state_home / "bots" / "r-live.json").write_text(
        json.dumps({"state": "running", "pid": os.getpid()})
    )
    dry = prune_runs(90 * 86400, dry_run=True)
    assert sorted(dry.removed) == ["r-crash", "r-old"] and old.exists()
    result = prune_runs(90 * 86400)
    assert sorted(result.removed) == ["r-crash", "r-old"]
    assert not old.exists() and not crashed.exists() and live.exists() and recent.exists()
    assert result.compressed == ["r-new"] and (recent / "ticks.jsonl.gz").exists()


def test_runs_prune_cli(state_home: Path) -> None:
    _run(state_home, "r-old", ended_at=time.time() - 100 * 86400)
    _run(state_home, "r-new", ended_at=time.time())
    out = run_cli("runs", "prune", "--keep", "90d")
    assert out.returncode == 0, out.stderr
    assert "removed 1 run(s)" in out.stdout and "compressed 1" in out.stdout
    assert not (state_home / "runs" / "r-old").exists()
    listing = run_cli("runs", "--json")
    assert listing.returncode == 0 and [r["run_id"] for r in json.loads(listing.stdout)] == [
        "r-new"
    ]
    bad = run_cli("runs", "prune", "--keep", "ninety")
    assert bad.returncode == 2 and "expected a duration" in bad.stderr


def test_parse_duration() -> None:
    assert parse_duration("90d") == 90 * 86400 and parse_duration("12h") == 43200
    with pytest.raises(BadInput):
        parse_duration("0d")


class FakeDisk:
    """statvfs numbers the test sets; the monitor under test is real."""

    def __init__(self, total: int, free: int) -> None:
        self.total, self.free = total, free

    def __call__(self, path: Path) -> Any:
        return SimpleNamespace(total=self.total, free=self.free, used=self.total - self.free)


def test_disk_monitor_warns_then_halts_once(tmp_path: Path) -> None:
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    halts: list[tuple[str, str]] = []
    disk = FakeDisk(total=100_000 * MB, free=50_000 * MB)
    section = DiskSection(warn_free_pct=10, halt_free_pct=3, halt_free_mb=500)
    mon = DiskMonitor(
        bus, section, ID, path=tmp_path, on_halt=lambda c, s: halts.append((c, s)), usage=disk
    )
    assert mon.check() == "ok" and not seen
    disk.free = 8_000 * MB
    assert mon.check() == "warn" and mon.check() == "warn"
    assert [d.code for d in seen] == ["DISK_LOW"]
    disk.free = 2_000 * MB
    assert mon.check() == "halt" and mon.check() == "halt"
    assert [d.code for d in seen] == ["DISK_LOW", "DISK_HALT"] and len(halts) == 1
    assert "halt_free_pct = 3%" in halts[0][1]
    disk.free = 60_000 * MB
    assert mon.check() == "ok" and seen[-1].code == "DISK_OK" and len(halts) == 1
    # the absolute floor applies on a large disk too
    big = FakeDisk(total=10_000_000 * MB, free=400 * MB)
    mon2 = DiskMonitor(bus, section, ID, path=tmp_path, usage=big)
    assert mon2.check() == "halt"


def test_gzip_member_is_standard(state_home: Path) -> None:
    d = _run(state_home, "r-z", ended_at=time.time(), ticks=3)
    compress_run(d)
    with gzip.open(d / "ticks.jsonl.gz", "rt") as fh:
        assert len(fh.readlines()) == 3


def test_a_paper_run_ends_compressed_and_report_reads_it(tmp_path: Path, state_home: Path) -> None:
    import tomllib

    import tomli_w

    from tests.conftest import ROOT

    doc = tomllib.loads((ROOT / "strategies" / "grid.toml").read_text())
    doc["strategy"]["file"] = str(ROOT / "strategies" / "grid.py")
    doc["disk"] = {"compress_min_kb": 0}
    toml = tmp_path / "grid.toml"
    toml.write_text(tomli_w.dumps(doc))
    run = run_cli("run", str(toml), "--duration", "4", "--plain")
    assert run.returncode == 0, run.stderr
    run_dir = next((state_home / "runs").iterdir())
    assert (run_dir / "ticks.jsonl.gz").exists() and (run_dir / "events.jsonl.gz").exists()
    assert not (run_dir / "ticks.jsonl").exists()
    report = run_cli("report", "last", "--json")
    assert report.returncode == 0, report.stderr
    doc = json.loads(report.stdout)
    assert doc["torn"] == [] and not any("missing" in n for n in doc["notes"])
    with open_journal(run_dir / "ticks.jsonl") as fh:
        assert len(fh.readlines()) >= 2
