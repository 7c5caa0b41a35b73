"""Rate-limit benchmark: a saturating mixed workload against the simulator, side by side.

Scenarios (each on a fresh simulator with a shrunk budget, default 1200 weight per 10 s):

1. perpbot, 1 process
2. perpbot, 3 processes sharing one key (and one SQLite budget)
3. plain ccxt with its default throttle, 1 process
4. plain ccxt, throttle tuned to the whole budget, 3 processes (what peers' users do)

For every full window the simulator's own weight counter (the exchange's truth) is sampled;
the figures are achieved weight per window as % of the budget, and the 429s and 418s the
simulator answered. Targets: perpbot >= 95 % with 0 429s in one process, >= 90 % and 0
429s across three.

    python bench/ratelimit.py [--windows 3] [--window-s 10] [--budget 1200] [--margin 0.03]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class WindowSampler:
    """Polls the simulator's weight counter; keeps the highest value seen per window."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.peak: dict[int, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            ips = self.handle.state()["limits"]["ips"]
            for ip in ips.values():
                start = int(ip["window_start"])
                self.peak[start] = max(self.peak.get(start, 0), int(ip["weight_used"]))
            time.sleep(0.02)

    def __enter__(self) -> WindowSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_scenario(
    name: str,
    *,
    processes: int,
    plain: bool,
    args: argparse.Namespace,
    rate_limit_ms: float | None = None,
) -> dict[str, Any]:
    from perpbot.sim import SimConfig, start_in_thread

    window_ms = args.window_s * 1000
    cfg = SimConfig(
        seed=7,
        limits={"weight_per_window": args.budget, "weight_window_s": args.window_s},
    )
    handle = start_in_thread(cfg)
    key, secret = handle.create_account()
    home = tempfile.mkdtemp(prefix="perpbot-bench-")
    env = dict(
        os.environ, PERPBOT_HOME=home, PERPBOT_SIM_API_KEY=key, PERPBOT_SIM_API_SECRET=secret
    )
    # start together, just after a window boundary, once every worker has imported ccxt
    now_ms = time.time() * 1000
    start_at = (math.floor(now_ms / window_ms) + 2) * window_ms / 1000 + 0.05
    seconds = args.windows * args.window_s + args.window_s - 0.1
    cmd = [
        sys.executable,
        "-m",
        "perpbot.client.ratelimit.workload",
        "--url",
        handle.base_url,
        "--seconds",
        f"{seconds}",
        "--concurrency",
        str(args.concurrency),
        "--margin",
        str(args.margin),
        "--start-at",
        f"{start_at}",
        "--orders",
    ]
    if rate_limit_ms is not None:
        cmd += ["--rate-limit-ms", f"{rate_limit_ms}"]
    try:
        with WindowSampler(handle) as sampler:
            procs = [
                subprocess.Popen(
                    [*cmd, "--tag", f"p{i}", "--seed", str(i + 1), *(["--plain"] if plain else [])],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for i in range(processes)
            ]
            outputs = [p.communicate(timeout=seconds + 120) for p in procs]
        counters = handle.state()["counters"]
    finally:
        handle.stop()
    workers = []
    for (out, err), p in zip(outputs, procs, strict=True):
        if p.returncode != 0:
            raise SystemExit(f"{name}: a worker failed ({p.returncode}): {err.strip()[-400:]}")
        workers.append(json.loads(out.strip().splitlines()[-1]))
    first = int(start_at * 1000)
    full = [
        w
        for w in sorted(sampler.peak)
        if w >= first - 100 and w + window_ms <= first + seconds * 1000
    ][: args.windows + 1]
    usage = [sampler.peak[w] / args.budget * 100 for w in full]
    return {
        "scenario": name,
        "windows": len(usage),
        "util_mean_pct": round(statistics.fmean(usage), 1) if usage else 0.0,
        "util_min_pct": round(min(usage), 1) if usage else 0.0,
        "per_window_pct": [round(u, 1) for u in usage],
        "http_429": counters["http_429"],
        "http_418": counters["http_418"],
        "requests": counters["requests"],
        "client_errors": sum(sum(w["errors"].values()) for w in workers),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=3, help="full windows measured")
    p.add_argument("--window-s", type=int, default=10)
    p.add_argument("--budget", type=int, default=1200)
    p.add_argument("--margin", type=float, default=0.03, help="[limits] safety_margin")
    p.add_argument("--concurrency", type=int, default=8, help="coroutines per process")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    tuned_ms = args.window_s * 1000 / args.budget  # one ccxt cost unit per this many ms
    rows = [
        run_scenario("perpbot, 1 process", processes=1, plain=False, args=args),
        run_scenario("perpbot, 3 processes, one key", processes=3, plain=False, args=args),
        run_scenario("plain ccxt, default throttle", processes=1, plain=True, args=args),
        run_scenario(
            "plain ccxt tuned to the budget, 3 processes",
            processes=3,
            plain=True,
            args=args,
            rate_limit_ms=tuned_ms,
        ),
    ]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(
        f"budget {args.budget} weight per {args.window_s} s window, {args.windows} full windows, "
        f"safety margin {args.margin:.0%}, {args.concurrency} coroutines per process"
    )
    head = f"{'scenario':46} {'util mean':>9} {'util min':>9} {'429s':>6} {'418s':>6} {'reqs':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['scenario']:46} {r['util_mean_pct']:>8}% {r['util_min_pct']:>8}% "
            f"{r['http_429']:>6} {r['http_418']:>6} {r['requests']:>7}"
        )
    print("per-window utilisation:", {r["scenario"]: r["per_window_pct"] for r in rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
