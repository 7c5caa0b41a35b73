"""How many requests per second the simulator sustains, and its own per-request latency.

One async ccxt client (client-side throttling off, server limits raised so they never
interfere) drives a mix of ticker / depth / create order / cancel order from a few
concurrent workers against a simulator running in its own thread. Prints the client-seen
throughput and the server-side handler latency (p50/p99, measured inside the simulator,
excluding network and client time).

    /work/venv/bin/python bench/sim_throughput.py [--seconds 10] [--workers 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import ccxt.async_support as accxt

from perpbot.client.loopback import configure_loopback
from perpbot.sim import SimConfig, start_in_thread
from perpbot.sim.config import LimitsConfig

SYMBOL = "BTC/USDT:USDT"


async def worker(
    ex: accxt.binanceusdm, deadline: float, counts: dict[str, int], index: int
) -> None:
    price = 58000.0 + index * 10  # resting, inside PERCENT_PRICE (mark +- 5 %)
    while time.perf_counter() < deadline:
        await ex.fetch_ticker(SYMBOL)
        await ex.fetch_order_book(SYMBOL, 20)
        order = await ex.create_order(SYMBOL, "limit", "buy", 0.01, price)
        await ex.cancel_order(order["id"], SYMBOL)
        counts["requests"] += 4


async def raw_phase(base_url: str, seconds: float, workers: int) -> float:
    """Plain aiohttp GETs (ticker price + depth) to show the server's own capacity."""
    counts = {"requests": 0}
    paths = ["/fapi/v1/ticker/price?symbol=BTCUSDT", "/fapi/v1/depth?symbol=BTCUSDT&limit=20"]

    async def run(session: aiohttp.ClientSession, deadline: float) -> None:
        while time.perf_counter() < deadline:
            for path in paths:
                async with session.get(base_url + path) as resp:
                    await resp.read()
            counts["requests"] += len(paths)

    async with aiohttp.ClientSession() as session:
        started = time.perf_counter()
        await asyncio.gather(*(run(session, started + seconds) for _ in range(workers)))
        return counts["requests"] / (time.perf_counter() - started)


async def separate_process_phase(seconds: float, workers: int) -> float:
    """The raw phase against `perpbot sim serve` running in its own process."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Path(tmp) / "sim.toml"
        cfg.write_text("[limits]\nenabled = false\n")
        env = {**os.environ, "PYTHONPATH": str(root)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "perpbot", "sim", "serve", "--config", str(cfg)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        try:
            assert proc.stdout is not None
            base_url = json.loads(proc.stdout.readline())["base_url"]
            return await raw_phase(base_url, seconds, workers)
        finally:
            proc.terminate()
            proc.wait(timeout=10)


async def main(seconds: float, workers: int) -> None:
    limits = LimitsConfig(
        weight_per_window=10_000_000,
        orders_per_short_window=10_000_000,
        orders_per_long_window=10_000_000,
    )
    handle = start_in_thread(SimConfig(seed=1, limits=limits))
    key, secret = handle.create_account(balance=10_000_000)
    ex = accxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
    configure_loopback(ex, handle.base_url)
    try:
        await ex.load_markets()
        counts = {"requests": 0}
        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(worker(ex, deadline, counts, i) for i in range(workers)))
        elapsed = time.perf_counter() - started
    finally:
        await ex.close()
    latency = handle.state()["counters"]["latency"]
    raw_rate = await raw_phase(handle.base_url, seconds / 2, workers * 4)
    handle.stop()
    separate_rate = await separate_process_phase(seconds / 2, workers * 4)
    print(f"workers={workers} seconds={elapsed:.1f} requests={counts['requests']}")
    print(
        f"throughput: {counts['requests'] / elapsed:.0f} req/s "
        "(mix: ticker, depth(20), create order, cancel order; one async ccxt client)"
    )
    print(
        f"server-side handler latency: p50 {latency['p50_us']:.0f} us, "
        f"p99 {latency['p99_us']:.0f} us, max {latency['max_us']:.0f} us "
        f"over {latency['count']} requests"
    )
    print(
        f"raw aiohttp (no ccxt), ticker/price + depth(20), {workers * 4} connections: "
        f"{raw_rate:.0f} req/s (simulator in a thread of this process, sharing the GIL)"
    )
    print(f"raw aiohttp against `perpbot sim serve` in its own process: {separate_rate:.0f} req/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.seconds, args.workers))
