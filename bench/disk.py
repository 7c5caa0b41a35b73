"""Bytes per day per bot: what a paper grid bot writes to the state dir, raw and gzipped.

Runs `perpbot run strategies/grid.toml --duration S` (the embedded simulator, REST polling
at the strategy's 1 s tick) in a temporary state dir, then measures:
  runs/<id>    the run's journals (ticks, events, fills; meta and summary), raw, and as
               `[disk]` compression leaves them (gzip level 6, compress_min_kb = 0)
  logs/<id>    the signed request log, raw, and gzipped in memory (the signed log's own
               compression is perpbot.audit's; this is what gzip would make of it)
and extrapolates each to a day (bytes / run time * 86400; start-up costs included, so a
short run slightly overstates). Target (issue 20): <= 50 MB/day for a single-symbol bot
on streams, compressed; this bot polls REST (no streams yet), so it makes more requests.

    python bench/disk.py [--seconds 20]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parents[1]
DAY = 86400.0


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []


def _raw(folder: Path) -> int:
    return sum(p.stat().st_size for p in _files(folder))


def _gzipped(folder: Path) -> int:
    return sum(
        p.stat().st_size if p.suffix == ".gz" else len(gzip.compress(p.read_bytes(), 6))
        for p in _files(folder)
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="perpbot-bench-disk-"))
    doc = tomllib.loads((ROOT / "strategies" / "grid.toml").read_text())
    doc["strategy"]["file"] = str(ROOT / "strategies" / "grid.py")
    doc["disk"] = {"compress": False}  # measured raw first, compressed below
    toml = home / "grid.toml"
    toml.write_text(tomli_w.dumps(doc))
    env = dict(os.environ, PERPBOT_HOME=str(home))
    cmd = [sys.executable, "-m", "perpbot", "run", str(toml), "--duration", str(args.seconds)]
    done = subprocess.run([*cmd, "--plain"], env=env, capture_output=True, text=True, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"bench: the run failed ({done.returncode}): {done.stderr[-500:]}")
    run_dir = next((home / "runs").iterdir())
    summary = json.loads((run_dir / "summary.json").read_text())
    runtime = float(summary["runtime_s"])
    ticks = len((run_dir / "ticks.jsonl").read_bytes().splitlines())
    log_dir = home / "logs" / run_dir.name
    runs_raw = _raw(run_dir)
    from perpbot.ops.runfiles import compress_run

    compress_run(run_dir)
    runs_gz = _raw(run_dir)
    logs_raw, logs_gz = _raw(log_dir), _gzipped(log_dir)

    def per_day(n: int) -> str:
        return f"{n / runtime * DAY / 1e6:8.1f} MB/day"

    print(f"paper grid bot, 1 symbol, {runtime:.1f} s run, {ticks} ticks")
    print(f"  runs/<id> raw        {runs_raw:>10,} B  {per_day(runs_raw)}")
    print(f"  runs/<id> gzip       {runs_gz:>10,} B  {per_day(runs_gz)}")
    print(f"  signed log raw       {logs_raw:>10,} B  {per_day(logs_raw)}")
    print(f"  signed log gzip (*)  {logs_gz:>10,} B  {per_day(logs_gz)}")
    print(f"  total raw                          {per_day(runs_raw + logs_raw)}")
    print(f"  total compressed                   {per_day(runs_gz + logs_gz)}")
    print("  (*) gzip of the segments in memory; the signed log's compression is perpbot.audit's")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
