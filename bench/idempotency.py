"""Idempotency benchmark: 1,000 order placements while responses get lost after commit.

The simulator loses 20 % of order responses *after* committing the order (the connection
is closed) and answers 5 % of order requests with a 5xx *before* doing anything. perpbot
must end with every intended order at the exchange exactly once. Figures: orders intended,
orders at the exchange, duplicates (target 0), intents lost (target 0), and the extra
requests spent resolving unknown outcomes (lookups and same-id resends).

    python bench/idempotency.py [--orders 1000] [--lost 0.2] [--errors 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYMBOLS = ("BTC/USDT:USDT", "ETH/USDT:USDT")
PER_ACCOUNT_SYMBOL = 100  # stays under the simulator's 200 open orders per symbol


async def place_all(handle: Any, args: argparse.Namespace) -> dict[str, Any]:
    from perpbot.app.pipeline import build_client
    from perpbot.client.orders import client_order_id
    from perpbot.client.request import OrderSpec
    from perpbot.client.setup import Credentials, Setup
    from perpbot.config import ExchangeSection, StrategyFile
    from perpbot.events import EventBus, ExchangeCall

    bus = EventBus()
    calls: list[ExchangeCall] = []
    bus.subscribe(lambda e: calls.append(e) if isinstance(e, ExchangeCall) else None)
    config = StrategyFile.model_validate(
        {
            "strategy": {"name": "bench", "file": "b.py", "symbols": list(SYMBOLS)},
            "retry": {"base_delay_s": 0.02, "max_delay_s": 0.5, "max_attempts": 10},
        }
    )
    accounts = -(-args.orders // (PER_ACCOUNT_SYMBOL * len(SYMBOLS)))
    clients = []
    for i in range(accounts):
        key, secret = handle.create_account()
        setup = Setup(
            exchange=ExchangeSection(id="sim", url=handle.base_url),
            command="bench",
            run_id=f"bench-idem-{i}",
            bus=bus,
            credentials=Credentials(api_key=key, secret=secret),
            base_url=handle.base_url,
            config=config,
            strategy="bench",
        )
        client = build_client(setup)
        await client.load_markets()
        clients.append(client)
    prices = {}
    for s in SYMBOLS:
        ticker = await clients[0].fetch_ticker(s)
        prices[s] = float(ticker["last"]) * 0.8  # post-only, far below: stays open
    handle.set_faults(
        {
            "lost_response": {"rate": args.lost},
            "errors": {"rate": args.errors, "paths": ["/fapi/v1/order"], "methods": ["POST"],
                       "statuses": [500, 502, 503]},
        }
    )  # fmt: skip
    intents: list[tuple[int, str, str]] = []  # (client index, symbol, client order id)
    for n in range(args.orders):
        i = n // (PER_ACCOUNT_SYMBOL * len(SYMBOLS))
        symbol = SYMBOLS[n % len(SYMBOLS)]
        intents.append((i, symbol, client_order_id(f"bench-idem-{i}", "bench", n)))
    sem = asyncio.Semaphore(args.concurrency)
    failures: Counter[str] = Counter()
    answered: set[str] = set()

    async def place(i: int, symbol: str, cid: str) -> None:
        client = clients[i]
        amount = 0.003 if symbol.startswith("BTC") else 0.05
        price = client.exchange.price_to_precision(symbol, prices[symbol])
        spec = OrderSpec(symbol, "buy", "limit", amount, float(price), post_only=True,
                         client_order_id=cid, intent="bench")  # fmt: skip
        async with sem:
            try:
                order = await client.create_order(spec)
                if order.get("clientOrderId") == cid:
                    answered.add(cid)
            except Exception as exc:
                failures[type(exc).__name__] += 1

    t0 = time.monotonic()
    await asyncio.gather(*(place(*intent) for intent in intents))
    elapsed = time.monotonic() - t0
    for client in clients:
        await client.close()
    return {"intents": intents, "answered": answered, "failures": failures, "calls": calls,
            "elapsed": elapsed}  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--orders", type=int, default=1000)
    p.add_argument("--lost", type=float, default=0.2, help="share of responses lost after commit")
    p.add_argument("--errors", type=float, default=0.05, help="share of 5xx before commit")
    p.add_argument("--concurrency", type=int, default=16)
    args = p.parse_args()
    os.environ.setdefault("PERPBOT_HOME", tempfile.mkdtemp(prefix="perpbot-bench-"))
    from perpbot.sim import SimConfig, start_in_thread

    handle = start_in_thread(SimConfig(seed=11))
    try:
        out = asyncio.run(place_all(handle, args))
        state = handle.state()
    finally:
        handle.stop()
    cids = {cid for _, _, cid in out["intents"]}
    at_exchange = Counter(o["clientOrderId"] for o in state["orders"] if o["clientOrderId"] in cids)
    creates = [c for c in out["calls"] if c.method == "create_order"]
    lookups = [c for c in out["calls"] if (c.intent or "").startswith("resolve ")]
    counters = state["counters"]
    duplicates = sum(n - 1 for n in at_exchange.values())
    lost = len(cids - set(at_exchange))
    print(f"orders intended             {len(cids)}")
    total = sum(at_exchange.values())
    print(f"orders at the exchange      {len(at_exchange)} distinct, {total} in all")
    print(f"duplicates                  {duplicates}   (target 0)")
    print(f"intents lost                {lost}   (target 0)")
    errors = dict(out["failures"])
    print(f"intents answered            {len(out['answered'])} (client-side errors: {errors})")
    print(f"faults injected             {counters['lost_responses']} responses lost after commit, "
          f"{counters['injected_errors']} 5xx before commit")  # fmt: skip
    print(f"order requests sent         {len(creates)} for {len(cids)} intents "
          f"({len(creates) - len(cids)} same-id resends)")  # fmt: skip
    print(f"lookup requests             {len(lookups)} "
          f"({len(lookups) / max(1, counters['lost_responses'] + counters['injected_errors']):.2f}"
          " per fault)")  # fmt: skip
    extra = len(creates) - len(cids) + len(lookups)
    print(f"extra requests in all       {extra} ({extra / len(cids):.1%} of intents)")
    print(f"-4116 duplicate-id rejects  {counters['rejects'].get('-4116', 0)}")
    print(f"wall time                   {out['elapsed']:.1f} s")
    return 0 if duplicates == 0 and lost == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
