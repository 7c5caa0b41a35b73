"""From the simulator's fill to the engine's fill event, p50/p99, streams vs polling.

A bot (tick_interval = 1) keeps one post-only buy resting at the best bid; a second account
on the same simulator (its own process) sends a market sell through it every ~0.7 s, and
the simulator's synthetic takers and market moves fill it too (those fills carry the market
step's time: the simulator computes each step at its time, so they are streamed within ms
of it). The fill's latency is the wall time at which the engine published its FillEvent
(perpbot.engine.events) minus the trade's timestamp on the simulator (same machine, same
clock, millisecond resolution). Each mode runs alone, one after
the other. Also printed: the age of the mark price the engine holds, sampled every 100 ms
(the market data a strategy's tick sees). Target: streams p50 <= 10 ms on loopback
(polling: up to one tick).

    python bench/stream_latency.py [--fills 40] [--no-synthetic] [--streams-only]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path
from typing import Any

import tomli_w

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.gridrun import simulator, throwaway_home

SYMBOL = "BTC/USDT:USDT"
TARGET_MS = 10.0
HERE = Path(__file__).resolve().parent


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def line(name: str, samples: list[float]) -> str:
    return (
        f"{name:24} n={len(samples):4d}  p50 {pct(samples, 0.5):8.1f} ms  "
        f"p99 {pct(samples, 0.99):8.1f} ms  max {max(samples, default=float('nan')):8.1f} ms"
    )


def rich_account(url: str) -> tuple[str, str]:
    """The taker: an account whose fees and spread costs over a long run never matter."""
    req = urllib.request.Request(
        url + "/__sim/accounts",
        data=json.dumps({"balance": 10_000_000}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        body = json.loads(resp.read())
    return body["api_key"], body["api_secret"]


async def measure(
    streams: bool, fills: int, args: argparse.Namespace
) -> tuple[list[float], list[float]]:
    import ccxt.async_support as ccxt_async

    from perpbot.app import plugins
    from perpbot.app.lifecycle import Runner
    from perpbot.client.loopback import configure_loopback
    from perpbot.config import load_strategy
    from perpbot.engine.events import FillEvent
    from perpbot.engine.loader import instantiate
    from perpbot.engine.output import RunOutput

    lat: list[float] = []
    ages: list[float] = []
    with simulator(11, "[market]\ntaker_rate = 0\n" if args.no_synthetic else "") as url:
        doc: dict[str, Any] = {
            "strategy": {
                "name": "latency",
                "file": str(HERE / "support" / "latency_bot.py"),
                "symbols": [SYMBOL],
                "tick_interval": 1.0,
            },
            "exchange": {"id": "sim", "url": url, "streams": streams},
            "kill": {"deadman": False},
        }
        toml = Path(tempfile.mkdtemp(prefix="perpbot-bench-lat-")) / "latency.toml"
        toml.write_text(tomli_w.dumps(doc))
        tomllib.loads(toml.read_text())
        loaded = load_strategy(toml)
        runner = Runner(
            loaded, instantiate(loaded), output=RunOutput("plain", io.StringIO(), io.StringIO())
        )
        plugins.attach(runner)
        runner.engine_events.subscribe(
            lambda e: (
                lat.append((time.time() - e.fill.ts) * 1000.0) if isinstance(e, FillEvent) else None
            )
        )
        task = asyncio.create_task(runner.run())
        key, secret = await asyncio.to_thread(rich_account, url)
        taker = ccxt_async.binanceusdm({"apiKey": key, "secret": secret})
        configure_loopback(taker, url)
        await taker.load_markets()
        deadline = time.monotonic() + 30.0 + fills * 3.0
        try:
            while len(lat) < fills and time.monotonic() < deadline and not task.done():
                await asyncio.sleep(0.7)
                seen = runner.state.mark_times.get(SYMBOL)
                if seen is not None:
                    ages.append((time.time() - seen) * 1000.0)
                if runner.ledger.open_client_ids(SYMBOL):
                    await taker.create_order(SYMBOL, "market", "sell", 2.0)
                    await asyncio.sleep(0.2)
                    await taker.create_order(SYMBOL, "market", "buy", 2.0)  # the taker: flat
        finally:
            await taker.close()
            runner.request_stop("bench over")
            await asyncio.wait_for(task, 60)
    return lat, ages


async def main(args: argparse.Namespace) -> int:
    takers = "another account's market orders" + ("" if args.no_synthetic else " and the market")
    print(f"resting bid filled by {takers}, tick_interval = 1")
    results = {}
    for streams in (True,) if args.streams_only else (True, False):
        results[streams] = await measure(streams, args.fills, args)
        mode = "streams" if streams else "polling"
        print(line(f"{mode}: fill -> engine", results[streams][0]))
        print(line(f"{mode}: mark age", results[streams][1]))
    p50 = pct(results[True][0], 0.5)
    print(
        f"target streams fill p50 <= {TARGET_MS:g} ms: {'met' if p50 <= TARGET_MS else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--fills", type=int, default=40)
    p.add_argument("--streams-only", action="store_true")
    p.add_argument("--no-synthetic", action="store_true", help="only the taker account's fills")
    throwaway_home()
    sys.exit(asyncio.run(main(p.parse_args())))
