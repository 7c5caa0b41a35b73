"""Run several workload processes against one simulator, started together, and measure.

Used by ``bench/ratelimit.py`` and the multi-process integration tests: every worker
(``python bench/support/workload.py --sync``) connects first and says READY; they
are then all told to start just after the exchange's weight window turns, and the
simulator's own weight counter (the exchange's truth) is sampled for each window.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

WORKLOAD = Path(__file__).with_name("workload.py")
START_SLACK_S = 0.05  # start just after the window turns


class WindowSampler:
    """Samples a simulator's weight counter; keeps the highest value seen per window.

    It reads the simulator's limiter directly (a few integers) rather than GET /__sim/state,
    whose full order history would slow the simulator down as a run goes on.
    """

    def __init__(self, handle: Any) -> None:
        self.limits = handle.server.engine.limits
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for ip in list(self.limits.ips.values()):
                start, used = int(ip.weight.start), int(ip.weight.used)
                self.peak[start] = max(self.peak.get(start, 0), used)
            time.sleep(0.005)

    def __enter__(self) -> WindowSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def full_windows(self, start_at: float, seconds: float, window_s: int) -> dict[int, int]:
        """Peak weight of every window that lies wholly inside the run (ms start -> weight)."""
        window_ms = window_s * 1000
        first = math.floor(start_at * 1000 / window_ms) * window_ms
        if first < start_at * 1000 - START_SLACK_S * 1000 - 1:
            first += window_ms  # started mid-window: that one is not full
        end = start_at * 1000 + seconds * 1000
        return {w: self.peak.get(w, 0) for w in range(first, int(end) - window_ms + 1, window_ms)}


@dataclass
class LoadRun:
    workers: list[dict[str, Any]]
    start_at: float
    seconds: float
    windows: dict[int, int]  # full windows: start (ms) -> peak weight at the exchange


def worker_command(base_url: str, seconds: float, *extra: str) -> list[str]:
    return [
        sys.executable, str(WORKLOAD),
        "--url", base_url, "--seconds", f"{seconds}", "--sync", *extra,
    ]  # fmt: skip


def run_workers(
    handle: Any,
    commands: list[list[str]],
    *,
    env: dict[str, str],
    seconds: float,
    window_s: int,
    timeout_s: float = 180.0,
) -> LoadRun:
    """Start the workers, release them together after a window turns, collect results."""
    full_env = dict(os.environ, **env)
    procs = [
        subprocess.Popen(
            cmd, env=full_env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        for cmd in commands
    ]  # fmt: skip
    try:
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "READY":
                _, err = proc.communicate(timeout=timeout_s)
                raise RuntimeError(f"a workload worker failed to start: {err.strip()[-600:]}")
        window_ms = window_s * 1000
        start_at = (math.floor(time.time() * 1000 / window_ms) + 1) * window_ms / 1000
        start_at += START_SLACK_S
        with WindowSampler(handle) as sampler:
            for proc in procs:
                assert proc.stdin is not None
                proc.stdin.write(f"{start_at}\n")
                proc.stdin.flush()
            outputs = [proc.communicate(timeout=timeout_s) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    workers = []
    for (out, err), proc in zip(outputs, procs, strict=True):
        if proc.returncode != 0 or not out.strip():
            raise RuntimeError(f"a workload worker failed ({proc.returncode}): {err[-600:]}")
        workers.append(json.loads(out.strip().splitlines()[-1]))
    return LoadRun(workers, start_at, seconds, sampler.full_windows(start_at, seconds, window_s))
