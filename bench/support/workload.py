"""A saturating mixed workload, for the rate-limit benchmark and the multi-process tests.

It sends market-data reads, account reads and (optionally) post-only orders far from the
market plus their cancels, from ``concurrency`` coroutines as fast as the client lets it,
for ``seconds``. It drives either perpbot's guarded client or a plain ccxt exchange, so
both meet the same load. As a script it runs one worker process and prints a JSON line::

    python bench/support/workload.py --url URL --seconds 6 [--plain] ...

(credentials from PERPBOT_SIM_API_KEY / PERPBOT_SIM_API_SECRET, as `perpbot run` takes them).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

SYMBOL = "BTC/USDT:USDT"


@dataclass
class WorkloadStats:
    requests: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    http_429: int = 0
    http_418: int = 0
    orders: int = 0
    decisions: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "ok": self.ok,
            "errors": dict(self.errors),
            "http_429": self.http_429,
            "http_418": self.http_418,
            "orders": self.orders,
            "decisions": dict(self.decisions),
        }


class Ops:
    """The calls of the mix, for a GuardedClient (``plain=False``) or a ccxt exchange."""

    def __init__(self, target: Any, plain: bool, price: float) -> None:
        self.t = target
        self.plain = plain
        self.price = price
        self.seq = 0

    async def place_and_cancel(self, tag: str) -> int:
        self.seq += 1
        price = round(self.price * 0.97, 1)  # post-only, below the market, inside PERCENT_PRICE
        if self.plain:
            cid = f"plain-{tag}-{self.seq}"
            params = {"postOnly": True, "clientOrderId": cid}
            order = await self.t.create_order(SYMBOL, "limit", "buy", 0.003, price, params)
            await self.t.cancel_order(order["id"], SYMBOL)
            return 2
        from perpbot.client.request import OrderSpec

        spec = OrderSpec(SYMBOL, "buy", "limit", 0.003, price, post_only=True, intent="load")
        spec.client_order_id = f"load-{tag}-{self.seq}"
        order = await self.t.create_order(spec)
        await self.t.cancel_order(order["id"], SYMBOL, client_order_id=spec.client_order_id)
        return 2

    async def one(self, rng: random.Random, with_orders: bool, tag: str) -> int:
        roll = rng.random()
        if with_orders and roll < 0.15:
            return await self.place_and_cancel(tag)
        if roll < 0.45:
            await self.t.fetch_ticker(SYMBOL)
        elif roll < 0.65:
            await self.t.fetch_order_book(SYMBOL, 5)
        elif roll < 0.80:
            await self.t.fetch_ohlcv(SYMBOL, "1m", None, 50)
        elif roll < 0.90:
            await self.t.fetch_open_orders(SYMBOL)
        else:
            await self.t.fetch_balance()
        return 1


async def synchronised_start(args: argparse.Namespace) -> None:
    """With ``--sync``: say READY, then take the common start time from stdin."""
    if args.sync:
        print("READY", flush=True)
        line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        args.start_at = float(line.strip() or 0.0)


async def drive(
    ops: Ops,
    seconds: float,
    concurrency: int,
    *,
    with_orders: bool,
    seed: int,
    tag: str,
    start_at: float = 0.0,
) -> WorkloadStats:
    """Run the mix from ``concurrency`` coroutines for ``seconds`` (from ``start_at``)."""
    import ccxt

    stats = WorkloadStats()
    if start_at:
        await asyncio.sleep(max(0.0, start_at - time.time()))
    deadline = time.monotonic() + seconds

    async def worker(i: int) -> None:
        rng = random.Random(seed * 1000 + i)
        while (left := deadline - time.monotonic()) > 0:
            try:
                op = ops.one(rng, with_orders, f"{tag}{i}")
                stats.requests += await asyncio.wait_for(op, timeout=left)
                stats.ok += 1
            except TimeoutError:
                break  # held past the end of the run
            except ccxt.DDoSProtection as exc:
                text = str(exc)
                stats.http_418 += " 418 " in text or "banned" in text
                stats.http_429 += " 429 " in text
                stats.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.05)  # a plain client has no better idea
            except Exception as exc:
                stats.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.01)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    return stats


def limits_config(store: str, margin: float, refresh_s: float, reserve_pct: float = 10.0) -> Any:
    """A StrategyFile carrying only the ``[limits]`` a worker needs."""
    from perpbot.config import StrategyFile

    return StrategyFile.model_validate(
        {
            "strategy": {"name": "load", "file": "load.py", "symbols": [SYMBOL]},
            "limits": {
                "store": store,
                "safety_margin": margin,
                "refresh_s": refresh_s,
                "reserve_pct": reserve_pct,
            },
            # the load measures the rate budget; with no engine to feed [risk] the balance,
            # the paper defaults would refuse every order: risk checks off, explicitly
            "risk": {"enabled": False},
        }
    )


async def run_perpbot(args: argparse.Namespace) -> dict[str, Any]:
    from perpbot.app.connect import connect
    from perpbot.config import ExchangeSection
    from perpbot.events import Decision, EventBus

    bus = EventBus()
    stats_decisions: Counter[str] = Counter()

    def count(event: Any) -> None:
        if isinstance(event, Decision):
            stats_decisions[event.code] += 1

    bus.subscribe(count)
    conn = await connect(
        ExchangeSection(id="sim", url=args.url),
        command="load",
        run_id=f"load-{args.tag}",
        bus=bus,
        config=limits_config(args.store, args.margin, args.refresh, args.reserve),
        strategy="load",
    )
    try:
        ticker = await conn.client.fetch_ticker(SYMBOL)
        ops = Ops(conn.client, False, float(ticker["last"]))
        stats = await start_and_drive(ops, args)
    finally:
        await conn.close()
    stats.decisions = stats_decisions
    return stats.as_dict()


async def start_and_drive(ops: Ops, args: argparse.Namespace) -> WorkloadStats:
    """Wait for the common start, then run the workload as ``args`` says."""
    await synchronised_start(args)
    return await drive(
        ops,
        args.seconds,
        args.concurrency,
        with_orders=args.orders,
        seed=args.seed,
        tag=args.tag,
        start_at=args.start_at,
    )


async def run_plain(args: argparse.Namespace) -> dict[str, Any]:
    import os

    import ccxt.async_support as ccxt_async

    from perpbot.app.connect import ENV_SIM_KEY, ENV_SIM_SECRET
    from perpbot.client.loopback import configure_loopback

    config: dict[str, Any] = {
        "apiKey": os.environ[ENV_SIM_KEY],
        "secret": os.environ[ENV_SIM_SECRET],
    }
    if args.rate_limit_ms:
        config["rateLimit"] = args.rate_limit_ms  # ms per ccxt cost unit
    ex = ccxt_async.binanceusdm(config)
    configure_loopback(ex, args.url)
    try:
        await ex.load_markets()
        ticker = await ex.fetch_ticker(SYMBOL)
        ops = Ops(ex, True, float(ticker["last"]))
        stats = await start_and_drive(ops, args)
    finally:
        await ex.close()
    return stats.as_dict()


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--url", required=True)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument("--concurrency", type=int, default=8)
    p.add_argument("--store", default="sqlite")
    p.add_argument("--margin", type=float, default=0.05)
    p.add_argument("--reserve", type=float, default=10.0, help="[limits] reserve_pct")
    p.add_argument("--refresh", type=float, default=60.0)
    p.add_argument("--orders", action="store_true")
    p.add_argument("--plain", action="store_true", help="plain ccxt with its default throttle")
    p.add_argument("--rate-limit-ms", type=float, default=0.0, help="plain ccxt's rateLimit")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--tag", default="w")
    p.add_argument("--start-at", type=float, default=0.0, help="wall-clock time to start at")
    p.add_argument(
        "--sync", action="store_true", help="print READY once connected, read the start time"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    result = asyncio.run(run_plain(args) if args.plain else run_perpbot(args))
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
