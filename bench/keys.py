"""What the ScopeGate adds to each request, and what a profile costs to load.

Prints:
- ScopeGate.check time per request (p50, p99, max over N) for a read, an order with every
  limit set, a reduce-only order judged against the account, and a denial (which builds
  the sentence and publishes the decision). Target: p50 under 20 us for allowed requests.
- under `.ci/secret-service.sh python bench/keys.py` (a throwaway gnome-keyring; a user's
  own keyring is never touched): load_profile latency (p50, max over 50 loads).

    python bench/keys.py [N]        (default N = 20000)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any


def _quantiles(samples: list[float]) -> tuple[float, float, float]:
    samples = sorted(samples)
    return samples[len(samples) // 2], samples[int(len(samples) * 0.99)], samples[-1]


def _time(fn: Callable[[], Any], n: int) -> tuple[float, float, float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        fn()
        out.append((time.perf_counter_ns() - t0) / 1000.0)
    return _quantiles(out)


def gate_figures(n: int) -> None:
    from perpbot.client.account import AccountView
    from perpbot.client.request import OrderSpec, Request
    from perpbot.errors import PermissionDenied
    from perpbot.events import EventBus
    from perpbot.keys.gate import ScopeGate
    from perpbot.keys.grant import Grant, Limits

    btc = "BTC/USDT:USDT"
    bus = EventBus()
    bus.subscribe(lambda e: None)
    account = AccountView()
    account.set_positions([{"symbol": btc, "info": {"positionAmt": "1.0"}}])
    limits = Limits(symbols=(btc,), max_notional=1e6, max_leverage=10)
    trade = Grant(commands={"run": frozenset({"read", "trade", "cancel"})}, limits=limits)
    reduce = Grant(commands={"run": frozenset({"read", "reduce", "cancel"})})
    g_trade = ScopeGate(grant=trade, profile="main", bus=bus, account=account)
    g_reduce = ScopeGate(grant=reduce, profile="main", bus=bus, account=account)
    read = Request("fetch_ticker", (btc,), symbol=btc)
    order = Request.for_order(OrderSpec(btc, "buy", "limit", 0.01, 30000.0))
    reduce_order = Request.for_order(
        OrderSpec(btc, "sell", "limit", 0.5, 30000.0, reduce_only=True)
    )

    def denied() -> None:
        with contextlib.suppress(PermissionDenied):
            g_reduce.check(order)

    print(f"ScopeGate.check over {n} requests (microseconds: p50 / p99 / max)")
    for label, fn in [
        ("read", lambda: g_trade.check(read)),
        ("order, all limits", lambda: g_trade.check(order)),
        ("reduce-only vs account", lambda: g_reduce.check(reduce_order)),
        ("denial (sentence + event)", denied),
    ]:
        p50, p99, mx = _time(fn, n)
        print(f"  {label:<28} {p50:8.2f} {p99:8.2f} {mx:9.1f}")

    async def through_layer() -> tuple[float, float, float]:
        async def terminal(request: Any) -> None:
            return None

        samples = []
        for _ in range(n):
            t0 = time.perf_counter_ns()
            await g_trade(read, terminal)
            samples.append((time.perf_counter_ns() - t0) / 1000.0)
        return _quantiles(samples)

    p50, p99, mx = asyncio.run(through_layer())
    print(f"  {'as a layer (await, read)':<28} {p50:8.2f} {p99:8.2f} {mx:9.1f}")


def keyring_figures() -> None:
    from perpbot.errors import PerpbotError
    from perpbot.keys import store

    if os.environ.get("PERPBOT_SECRET_SERVICE") != "1":  # never touch a user's own keyring
        print("load_profile: skipped (run under .ci/secret-service.sh to measure a keyring)")
        return
    try:
        store.usable_keyring()
    except PerpbotError as exc:
        print(f"load_profile: skipped ({exc.code}: no usable OS keyring here)")
        return
    name = f"bench-{os.getpid()}"
    store.save_profile(store.new_profile(name, "k" * 64, "s" * 64, "sim"))
    try:
        p50, _, mx = _time(lambda: store.load_profile(name), 50)
        print(
            f"load_profile from {type(store.usable_keyring()).__module__}: "
            f"p50 {p50 / 1000:.2f} ms, max {mx / 1000:.2f} ms (50 loads)"
        )
    finally:
        store.remove_profile(name)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    os.environ["PERPBOT_HOME"] = tempfile.mkdtemp(prefix="perpbot-bench-keys-")
    gate_figures(n)
    keyring_figures()


if __name__ == "__main__":
    main()
