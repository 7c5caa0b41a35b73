"""Rate-limit benchmark: a saturating mixed workload against the simulator, side by side.

Scenarios (each on a fresh simulator with a shrunk budget, default 1200 weight per 10 s):

1. perpbot, 1 process
2. perpbot, 3 processes sharing one key (and one SQLite budget)
3. plain ccxt with its default throttle, 1 process
4. plain ccxt, throttle tuned to the whole budget, 3 processes (what peers' users do)

For every full window the simulator's own weight counter (the exchange's truth) is sampled;
the figures are achieved weight per window as % of the budget, and the 429s and 418s the
simulator answered. Targets: perpbot >= 95 % with 0 429s in one process, >= 90 % and 0
429s across three, with ``--reserve 0``. With the default ``[limits] reserve_pct = 10``
ordinary requests (the workload's reads and orders, 85-90 % of its weight) stop at
0.9 x (1 - margin) of the budget and only its cancels may use the rest: expect ~88 %.

    python bench/ratelimit.py [--windows 3] [--window-s 10] [--budget 1200] [--margin 0.03]
                              [--reserve 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.loadtest import run_workers, worker_command


def run_scenario(
    name: str,
    *,
    processes: int,
    plain: bool,
    args: argparse.Namespace,
    rate_limit_ms: float | None = None,
) -> dict[str, Any]:
    from perpbot.sim import SimConfig, start_in_thread

    limits = {"weight_per_window": args.budget, "weight_window_s": args.window_s}
    handle = start_in_thread(SimConfig(seed=7, limits=limits))
    key, secret = handle.create_account()
    env = {
        "PERPBOT_HOME": tempfile.mkdtemp(prefix="perpbot-bench-"),
        "PERPBOT_SIM_API_KEY": key,
        "PERPBOT_SIM_API_SECRET": secret,
    }
    # the run covers the measured windows plus the one it starts in (partly idle at start)
    seconds = (args.windows + 1) * args.window_s - 0.1
    extra = ["--concurrency", str(args.concurrency), "--margin", str(args.margin), "--orders"]
    extra += ["--reserve", str(args.reserve)]
    if plain:
        extra.append("--plain")
    if rate_limit_ms is not None:
        extra += ["--rate-limit-ms", f"{rate_limit_ms}"]
    commands = [
        worker_command(handle.base_url, seconds, *extra, "--tag", f"p{i}", "--seed", str(i + 1))
        for i in range(processes)
    ]
    try:
        run = run_workers(handle, commands, env=env, seconds=seconds, window_s=args.window_s)
        counters = handle.state()["counters"]
    finally:
        handle.stop()
    usage = [peak / args.budget * 100 for peak in run.windows.values()][: args.windows]
    return {
        "scenario": name,
        "windows": len(usage),
        "util_mean_pct": round(statistics.fmean(usage), 1) if usage else 0.0,
        "util_min_pct": round(min(usage), 1) if usage else 0.0,
        "per_window_pct": [round(u, 1) for u in usage],
        "http_429": counters["http_429"],
        "http_418": counters["http_418"],
        "requests": counters["requests"],
        "client_errors": sum(sum(w["errors"].values()) for w in run.workers),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--windows", type=int, default=3, help="full windows measured")
    p.add_argument("--window-s", type=int, default=10)
    p.add_argument("--budget", type=int, default=1200)
    p.add_argument("--margin", type=float, default=0.03, help="[limits] safety_margin")
    p.add_argument("--reserve", type=float, default=10.0, help="[limits] reserve_pct")
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
        f"safety margin {args.margin:.0%}, reserve {args.reserve:g} % (perpbot), "
        f"{args.concurrency} coroutines per process"
    )
    head = f"{'scenario':46} {'util mean':>9} {'util min':>9} {'429s':>6} {'418s':>6} {'reqs':>7}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['scenario']:46} {r['util_mean_pct']:>8}% {r['util_min_pct']:>8}% "
            f"{r['http_429']:>6} {r['http_418']:>6} {r['requests']:>7}"
        )
    print("per-window utilisation (%):")
    for r in rows:
        print(f"  {r['scenario']:46} {r['per_window_pct']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
