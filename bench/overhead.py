"""Overhead benchmark: per-request latency of the guarded client vs raw ccxt async.

Both talk to the same simulator in the same run, alternating in blocks so that machine
noise hits both alike. The guarded client runs the whole pipeline (kill gate, scope gate,
risk gate, rate limiter with its shared SQLite budget, retrier, observed transport, events);
raw ccxt runs with its throttle off, so the difference is perpbot's own cost. The
simulator's budget is set high so that no request is held back. Target: p50 overhead < 10 %.

    python bench/overhead.py [--requests 2000] [--block 100]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMBOL = "BTC/USDT:USDT"


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure(handle: Any, args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    import ccxt.async_support as ccxt_async

    from perpbot.client.assemble import Credentials, Setup, build_client
    from perpbot.config import ExchangeSection, StrategyFile
    from perpbot.events import EventBus
    from perpbot.sim.ccxt_config import configure_loopback

    key, secret = handle.create_account()
    raw = ccxt_async.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
    configure_loopback(raw, handle.base_url)
    config = StrategyFile.model_validate(
        {"strategy": {"name": "bench", "file": "b.py", "symbols": [SYMBOL]}}
    )
    setup = Setup(
        exchange=ExchangeSection(id="sim", url=handle.base_url),
        command="bench",
        run_id="bench-overhead",
        bus=EventBus(),
        credentials=Credentials(api_key=key, secret=secret),
        base_url=handle.base_url,
        config=config,
        strategy="bench",
    )
    guarded = build_client(setup)
    await raw.load_markets()
    await guarded.load_markets()
    calls: dict[str, dict[str, Callable[[], Awaitable[Any]]]] = {
        "fetch_ticker (public)": {
            "raw": lambda: raw.fetch_ticker(SYMBOL),
            "guarded": lambda: guarded.fetch_ticker(SYMBOL),
        },
        "fetch_balance (signed)": {
            "raw": lambda: raw.fetch_balance(),
            "guarded": lambda: guarded.fetch_balance(),
        },
    }
    out: dict[str, dict[str, list[float]]] = {name: {"raw": [], "guarded": []} for name in calls}
    try:
        for name, pair in calls.items():
            for side in ("raw", "guarded"):  # warm up connections and caches
                for _ in range(50):
                    await pair[side]()
            done = 0
            while done < args.requests:
                for side in ("raw", "guarded"):
                    for _ in range(args.block):
                        t0 = time.perf_counter()
                        await pair[side]()
                        out[name][side].append((time.perf_counter() - t0) * 1000)
                done += args.block
    finally:
        await raw.close()
        await guarded.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000, help="per client and call")
    p.add_argument("--block", type=int, default=100)
    args = p.parse_args()
    os.environ.setdefault("PERPBOT_HOME", tempfile.mkdtemp(prefix="perpbot-bench-"))
    from perpbot.sim import SimConfig, start_in_thread

    limits = {"weight_per_window": 10_000_000, "weight_window_s": 60}
    handle = start_in_thread(SimConfig(seed=3, limits=limits))
    try:
        results = asyncio.run(measure(handle, args))
    finally:
        handle.stop()
    print(f"{args.requests} sequential requests per client and call, alternating blocks of "
          f"{args.block}; latency in ms")  # fmt: skip
    print(f"{'call':24} {'client':8} {'p50':>7} {'p99':>7} {'mean':>7}   p50 overhead")
    for name, sides in results.items():
        base = pct(sides["raw"], 0.5)
        for side in ("raw", "guarded"):
            s = sides[side]
            over = "" if side == "raw" else f"   {(pct(s, 0.5) / base - 1) * 100:+.1f} %"
            print(f"{name:24} {side:8} {pct(s, 0.5):7.3f} {pct(s, 0.99):7.3f} "
                  f"{statistics.fmean(s):7.3f}{over}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
