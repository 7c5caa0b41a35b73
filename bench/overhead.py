"""Overhead benchmark: per-request latency of the guarded client vs raw ccxt async.

Both talk to the same simulator (in its own process, as an exchange is) in the same run,
alternating in blocks so that machine noise hits both alike (``--breakdown`` adds clients
with only some layers, to show where the time goes). The guarded client is the one
``perpbot run`` builds: the whole pipeline (kill gate, scope gate, risk gate, rate limiter
with its shared SQLite budget, retrier, observed transport, an ExchangeCall event per
request), with reads routed past the gates that would only let them through; the bus has
no subscriber here (what the signed log adds is ``bench/audit.py``'s figure). Raw ccxt runs
with its throttle off, so the difference is perpbot's own cost. The simulator's budget is
set high so that no request is held back. Figures: what each client adds per request over
raw ccxt, in µs (its p50 minus raw ccxt's p50, its p99 minus raw ccxt's p99).
Target: the guarded client adds at most 50 µs at p50.

    python bench/overhead.py [--requests 2000] [--block 50] [--breakdown] [--in-process]
                             [--redis redis://127.0.0.1:6379/0]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMBOL = "BTC/USDT:USDT"
TARGET_US = 50.0


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


SIM_TOML = """
seed = 3
[limits]
weight_per_window = 10000000
weight_window_s = 60
"""


@contextlib.contextmanager
def simulator(in_process: bool) -> Iterator[tuple[str, str, str]]:
    """A simulator whose budget never holds a request back: (base_url, key, secret).

    By default it runs in its own process, as an exchange does: in this process its
    event-loop thread would compete for the GIL with the client being measured.
    """
    if in_process:
        from perpbot.sim import SimConfig, start_in_thread

        limits = {"weight_per_window": 10_000_000, "weight_window_s": 60}
        handle = start_in_thread(SimConfig(seed=3, limits=limits))
        try:
            yield (handle.base_url, *handle.create_account())
        finally:
            handle.stop()
        return
    config = Path(tempfile.mkdtemp(prefix="perpbot-bench-")) / "sim.toml"
    config.write_text(SIM_TOML)
    cmd = [sys.executable, "-m", "perpbot", "sim", "serve", "--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        yield info["base_url"], info["api_key"], info["api_secret"]
    finally:
        proc.terminate()
        proc.wait(10)


def pipeline_client(setup: Any, layer_names: list[str]) -> Any:
    """A GuardedClient with only some layers (the breakdown), or all of them."""
    from perpbot.app.pipeline import build_client, build_layers
    from perpbot.client.guarded import GuardedClient
    from perpbot.client.pipeline import Pipeline
    from perpbot.client.transport import Transport, make_exchange
    from perpbot.client.wire import HttpObservers

    setup = dataclasses.replace(setup, observers=HttpObservers())  # this client's own hooks
    if layer_names == ["all"]:
        return build_client(setup)
    ex = make_exchange(
        "sim",
        api_key=setup.credentials.api_key,
        secret=setup.credentials.secret,
        base_url=setup.base_url,
        observers=setup.observers,
    )
    layers = [lay for lay in build_layers(setup, ex) if lay.name in layer_names]
    # build_layers attached the wire hooks of every layer (the kill gate's last look, the
    # limiter's charge and read): undo them, and put back only the kept limiter's, so that
    # each row measures the layers it names
    observers = setup.observers
    observers.clear()
    limiter = next((lay for lay in layers if lay.name == "ratelimit"), None)
    if limiter is not None:
        observers.add_before(limiter.http.before_http)
        observers.after.append(limiter.http.after_http)
    pipeline = Pipeline(layers, Transport(ex, setup.bus), setup.bus)
    return GuardedClient(pipeline, ex, command="bench", profile=None, run_id=setup.run_id)


CLIENTS = {
    "raw ccxt": None,
    "transport only": [],
    "+ retrier": ["retry"],
    "+ rate limiter": ["ratelimit", "retry"],
    "guarded (all layers)": ["all"],
}


async def measure(
    base_url: str, key: str, secret: str, args: argparse.Namespace
) -> dict[str, dict[str, list[float]]]:
    import ccxt.async_support as ccxt_async

    from perpbot.client.loopback import configure_loopback
    from perpbot.client.setup import Credentials, Setup
    from perpbot.config import ExchangeSection, StrategyFile
    from perpbot.events import EventBus

    config = StrategyFile.model_validate(
        {"strategy": {"name": "bench", "file": "b.py", "symbols": [SYMBOL]}}
    )
    setup = Setup(
        exchange=ExchangeSection(id="sim", url=base_url),
        command="bench",
        run_id="bench-overhead",
        bus=EventBus(),
        credentials=Credentials(api_key=key, secret=secret),
        base_url=base_url,
        config=config,
        strategy="bench",
    )
    clients: dict[str, Any] = {}
    for label, names in CLIENTS.items():
        if names is None:
            raw = ccxt_async.binanceusdm(
                {"apiKey": key, "secret": secret, "enableRateLimit": False}
            )
            configure_loopback(raw, base_url)
            clients[label] = raw
        elif label == "guarded (all layers)" or args.breakdown:
            clients[label] = pipeline_client(setup, names)
    if args.redis:  # the same client with its budget shared through Redis
        from dataclasses import replace

        shared = config.model_copy(update={"limits": config.limits.model_copy(update={
            "store": args.redis})})  # fmt: skip
        clients["guarded, redis store"] = pipeline_client(replace(setup, config=shared), ["all"])
    for client in clients.values():
        await client.load_markets()
    calls: dict[str, Callable[[Any], Awaitable[Any]]] = {
        "fetch_ticker (public)": lambda c: c.fetch_ticker(SYMBOL),
        "fetch_balance (signed)": lambda c: c.fetch_balance(),
    }
    out = {name: {label: [] for label in clients} for name in calls}
    try:
        for name, call in calls.items():
            for client in clients.values():  # warm up connections and caches
                for _ in range(50):
                    await call(client)
            for _ in range(0, args.requests, args.block):
                for label, client in clients.items():
                    for _ in range(args.block):
                        t0 = time.perf_counter()
                        await call(client)
                        out[name][label].append((time.perf_counter() - t0) * 1000)
    finally:
        for client in clients.values():
            await client.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--requests", type=int, default=2000, help="per client and call")
    p.add_argument("--block", type=int, default=50)
    p.add_argument("--breakdown", action="store_true", help="also time the pipeline layer by layer")
    p.add_argument("--in-process", action="store_true", help="run the simulator in a thread")
    p.add_argument(
        "--redis",
        metavar="URL",
        help="also time the guarded client with "
        "[limits] store = URL (a running redis-server, e.g. redis://127.0.0.1:6379/0)",
    )
    args = p.parse_args()
    os.environ.setdefault("PERPBOT_HOME", tempfile.mkdtemp(prefix="perpbot-bench-"))
    with simulator(args.in_process) as (base_url, key, secret):
        results = asyncio.run(measure(base_url, key, secret, args))
    where = "in this process" if args.in_process else "in its own process (`perpbot sim serve`)"
    print(f"simulator {where}")
    print(f"{args.requests} sequential requests per client and call, alternating blocks of "
          f"{args.block}; latency in ms")  # fmt: skip
    print(f"{'call':24} {'client':22} {'p50 ms':>7} {'p99 ms':>7}   {'added p50':>10} {'p99':>8}")
    for name, sides in results.items():
        raw50, raw99 = pct(sides["raw ccxt"], 0.5), pct(sides["raw ccxt"], 0.99)
        for label, samples in sides.items():
            p50, p99 = pct(samples, 0.5), pct(samples, 0.99)
            added = (
                ""
                if label == "raw ccxt"
                else f"   {(p50 - raw50) * 1000:+7.1f} µs {(p99 - raw99) * 1000:+7.1f} µs"
            )
            print(f"{name:24} {label:22} {p50:7.3f} {p99:7.3f}{added}")
    print(f"target: the guarded client adds <= {TARGET_US:.0f} µs at p50")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
