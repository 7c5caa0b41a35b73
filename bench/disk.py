"""Bytes per day per bot: what the example grid bot writes to the state dir, streams vs polling.

Runs `perpbot run strategies/grid.toml --duration S` (one symbol, the embedded simulator,
1 s ticks) twice, side by side, each in its own temporary state dir: once on streams
(`[exchange] streams`, the simulator's default) and once polling REST every tick
(`streams = false`). Each run's files stay plain (`[disk] compress = false`) so that they
can be measured; per component:

  signed log   logs/<id>/audit-*.jsonl (every request, decision and signed checkpoint)
  ticks        runs/<id>/ticks.jsonl
  events       runs/<id>/events.jsonl
  fills        runs/<id>/fills.jsonl
  other        runs/<id>/meta.json, summary.json, logs/<id>/checkpoint.json (fixed size)

``--tick-detail-s 0`` writes every ticks.jsonl line in full (perpbot before the lines were
thinned; `[disk] tick_detail_s`), for comparison.

raw, and gzipped (level 6, what `[disk] compress` makes of a run's journals when it ends and
`perpbot.audit` of a closed signed-log file). Only the steady state is counted: the bytes
written after the first tick plus ``--warmup`` seconds, up to the end of the run, divided by
that window and scaled to a day (the start-up burst and the final cancels are left out;
``whole run`` gives the plain total over the whole run time as a cross-check). The gzipped
figure of a short window slightly overstates a day's (less history to compress against).

Target (issue 20): <= 50 MB/day for a single-symbol bot on streams, compressed.

    python bench/disk.py [--seconds 60] [--warmup 10]
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
import time
import tomllib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parents[1]
DAY = 86400.0
TARGET_MB = 50.0
JOURNALS = {"ticks": "ticks.jsonl", "events": "events.jsonl", "fills": "fills.jsonl"}
COMPONENTS = ("signed log", *JOURNALS)


@dataclass
class Run:
    mode: str
    home: Path
    proc: subprocess.Popen[str]
    started: float = 0.0  # wall time of the first tick
    window_start: float = 0.0
    offsets: dict[str, int] = field(default_factory=dict)
    counts0: dict[str, int] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path | None:
        runs = self.home / "runs"
        found = sorted(runs.iterdir()) if runs.is_dir() else []
        return found[0] if found else None


def _bytes(run: Run, component: str) -> bytes:
    """Everything the run has written to one component so far."""
    run_dir = run.run_dir
    if run_dir is None:
        return b""
    if component == "signed log":
        files = sorted((run.home / "logs" / run_dir.name).glob("audit-*.jsonl"))
        return b"".join(p.read_bytes() for p in files)
    path = run_dir / JOURNALS[component]
    return path.read_bytes() if path.exists() else b""


def _other(run: Run) -> int:
    run_dir = run.run_dir
    assert run_dir is not None
    fixed = [run_dir / "meta.json", run_dir / "summary.json"]
    fixed.append(run.home / "logs" / run_dir.name / "checkpoint.json")
    return sum(p.stat().st_size for p in fixed if p.exists())


def start(mode: str, seconds: float, tick_detail_s: float | None) -> Run:
    home = Path(tempfile.mkdtemp(prefix=f"perpbot-bench-disk-{mode}-"))
    doc = tomllib.loads((ROOT / "strategies" / "grid.toml").read_text())
    doc["strategy"]["file"] = str(ROOT / "strategies" / "grid.py")
    doc["exchange"]["streams"] = mode == "streams"
    doc["disk"] = {"compress": False}  # measured plain; gzipped below
    if tick_detail_s is not None:
        doc["disk"]["tick_detail_s"] = tick_detail_s
    toml = home / "grid.toml"
    toml.write_text(tomli_w.dumps(doc))
    env = dict(os.environ, PERPBOT_HOME=str(home))
    cmd = [sys.executable, "-m", "perpbot", "run", str(toml), "--duration", str(seconds)]
    proc = subprocess.Popen(
        [*cmd, "--plain"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    return Run(mode=mode, home=home, proc=proc)


def mark_window(run: Run, warmup: float, deadline: float) -> None:
    """Wait for the first tick, then ``warmup`` seconds, then note every file's size."""
    while not _bytes(run, "ticks"):
        if run.proc.poll() is not None or time.time() > deadline:
            raise SystemExit(f"bench: the {run.mode} run never ticked: {_stderr(run)}")
        time.sleep(0.2)
    run.started = time.time()
    time.sleep(max(0.0, run.started + warmup - time.time()))
    run.window_start = time.time()
    for c in COMPONENTS:
        data = _bytes(run, c)
        run.offsets[c] = len(data)
        run.counts0[c] = data.count(b"\n")


def _stderr(run: Run) -> str:
    if run.proc.poll() is None:
        return "(still running)"
    return (run.proc.stderr.read() if run.proc.stderr else "")[-500:]


@dataclass
class Measured:
    mode: str
    window_s: float
    runtime_s: float
    raw: dict[str, int]
    gz: dict[str, int]
    lines: dict[str, int]
    kinds: dict[str, int]  # signed-log records in the window, by kind
    whole_raw: int
    other: int


def finish(run: Run) -> Measured:
    """Wait for the run to end (its final cancels and close) and measure it."""
    rc = run.proc.wait()
    if rc != 0:
        raise SystemExit(f"bench: the {run.mode} run failed ({rc}): {_stderr(run)}")
    run_dir = run.run_dir
    assert run_dir is not None
    summary = json.loads((run_dir / "summary.json").read_text())
    # the window ends at the last tick: the stop's final cancels and close are left out
    ended = float(json.loads(_bytes(run, "ticks").splitlines()[-1])["ts"])
    raw: dict[str, int] = {}
    gz: dict[str, int] = {}
    lines: dict[str, int] = {}
    whole = 0
    kinds: Counter[str] = Counter()
    for c in COMPONENTS:
        data = _bytes(run, c)
        whole += len(data)
        window = _cut_at(data[run.offsets[c] :], c, ended)
        raw[c] = len(window)
        gz[c] = len(gzip.compress(window, 6)) if window else 0
        lines[c] = window.count(b"\n")
        if c == "signed log":
            kinds.update(str(json.loads(line).get("kind")) for line in window.splitlines())
    return Measured(
        mode=run.mode,
        window_s=max(1e-3, ended - run.window_start),
        runtime_s=float(summary["runtime_s"]),
        raw=raw,
        gz=gz,
        lines=lines,
        kinds=dict(kinds),
        whole_raw=whole + _other(run),
        other=_other(run),
    )


def _cut_at(data: bytes, component: str, ended: float) -> bytes:
    """``data`` as written up to ``ended`` (records carry a ``ts``; torn lines are dropped)."""
    kept = []
    for line in data.splitlines(keepends=True):
        try:
            ts = float(json.loads(line).get("ts", 0.0))
        except (ValueError, AttributeError):
            continue
        if ts <= ended:
            kept.append(line)
    return b"".join(kept)


def per_day(n: float, seconds: float) -> float:
    return n / seconds * DAY / 1e6


def report(results: list[Measured]) -> None:
    head = "".join(f"{m.mode + ' raw':>15}{m.mode + ' gzip':>15}" for m in results)
    print(f"{'MB/day':<12}{head}")
    for c in COMPONENTS:
        cells = "".join(
            f"{per_day(m.raw[c], m.window_s):15.1f}{per_day(m.gz[c], m.window_s):15.1f}"
            for m in results
        )
        print(f"{c:<12}{cells}")
    cells = "".join(
        f"{per_day(sum(m.raw.values()), m.window_s):15.1f}"
        f"{per_day(sum(m.gz.values()), m.window_s):15.1f}"
        for m in results
    )
    print(f"{'total':<12}{cells}")
    cells = "".join(f"{per_day(m.whole_raw, m.runtime_s):15.1f}{'':>15}" for m in results)
    print(f"{'whole run':<12}{cells}")
    print()
    for m in results:
        counts = ", ".join(f"{m.lines[c]} {c} lines" for c in COMPONENTS)
        per_line = m.raw["signed log"] / max(1, m.lines["signed log"])
        print(
            f"{m.mode}: {m.window_s:.1f} s steady window of a {m.runtime_s:.1f} s run: {counts} "
            f"(signed log {per_line:.0f} B/record); fixed files {m.other:,} B"
        )
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(m.kinds.items(), key=lambda kv: -kv[1]))
        print(f"  signed log records: {kinds}")
    streams = next((m for m in results if m.mode == "streams"), None)
    if streams is not None:
        total = per_day(sum(streams.gz.values()), streams.window_s)
        verdict = "meets" if total <= TARGET_MB else "MISSES"
        target = f"the {TARGET_MB:.0f} MB/day target"
        print(f"streams, compressed: {total:.1f} MB/day, {verdict} {target}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seconds", type=float, default=60.0, help="each run's --duration")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds after the first tick")
    ap.add_argument("--modes", default="streams,polling", help="comma-separated")
    ap.add_argument(
        "--tick-detail-s",
        type=float,
        default=None,
        help="[disk] tick_detail_s for both runs (default: the config default; 0: every "
        "ticks.jsonl line full, as before perpbot thinned them)",
    )
    args = ap.parse_args()
    if args.warmup >= args.seconds:
        raise SystemExit("bench: --warmup must be shorter than --seconds")
    runs = [start(m, args.seconds, args.tick_detail_s) for m in args.modes.split(",")]
    try:
        deadline = time.time() + 120.0
        for run in runs:  # side by side: both on the same machine load
            mark_window(run, args.warmup, deadline)
        results = [finish(run) for run in runs]
    finally:
        for run in runs:
            if run.proc.poll() is None:
                run.proc.kill()
            shutil.rmtree(run.home, ignore_errors=True)
    detail = args.tick_detail_s
    print(
        f"grid bot (strategies/grid.toml), 1 symbol, 1 s ticks, embedded simulator; "
        f"{args.seconds:.0f} s runs, steady state from {args.warmup:.0f} s after the first tick; "
        f"[disk] tick_detail_s = {'default' if detail is None else detail}"
    )
    report(results)


if __name__ == "__main__":
    main()
