"""Exit policies side by side on a thin simulated book with lasting impact.

For positions of 1x, 5x and 20x the top-of-book depth, each policy closes a long on the
simulator (over HTTP, ccxt, the same executor ``perpbot flatten`` uses) and the bench prints
the implementation shortfall vs the arrival mark (bps), the time to flat (exchange seconds)
and the worst child's average fill. A last block puts liquidation 0.8 % away and compares
``adaptive`` with ``market`` on time to flat.

The book: ``crowd_level_qty`` 0.2 BTC per level, 5 s refill half-life, 30 % of every
sweep's move of the touch stays (``impact_permanent``). The clock runs 10x, so 1 wall
second is 10 exchange seconds; the position is placed on the account at the mark (a bench
set-up: opening it with orders would move the book before the exit starts).

    .venv/bin/python bench/exit.py [--seeds 3] [--sizes 1,5,20]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from perpbot.client.guarded import GuardedClient
from perpbot.client.pipeline import Pipeline
from perpbot.client.transport import Transport, make_exchange
from perpbot.events import EventBus
from perpbot.exits import POLICIES, ExitConfig, ExitVenue, run_exit
from perpbot.exits.venue import client_position
from perpbot.sim import SimConfig, start_in_thread
from perpbot.sim.config import MarketConfig, SymbolConfig
from perpbot.sim.models import SimPosition

SPEED = 10.0
SYMBOL = "BTC/USDT:USDT"
TOP = 0.2  # mean crowd size per level (BTC)


def sim_config(seed: int) -> SimConfig:
    return SimConfig(
        seed=seed,
        clock_speed=SPEED,
        symbols=[SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0,
                              crowd_level_qty=TOP, crowd_levels=10,
                              crowd_level_step_ticks=50)],
        market=MarketConfig(jump_rate=0.0, volatility=0.00003, taker_rate=0.5,
                            premium_vol=0.00005, premium_regime_vol=0.0,
                            impact_permanent=0.3, book_half_life_s=5.0),
    )  # fmt: skip


def exit_config() -> ExitConfig:
    # paced in exchange time: one child every 5 exchange seconds (the book's half-life)
    return ExitConfig(
        pace_s=5.0 / SPEED,
        passive_step_s=5.0 / SPEED,
        timeout_s=120.0,
        clock_speed=SPEED,
        sigma_per_sqrt_s=0.00003,
    )


def give_position(handle: Any, key: str, qty: float, wallet: float | None) -> None:
    def put() -> None:
        engine = handle.server.engine
        acct = engine.accounts[key]
        mark = engine.markets["BTCUSDT"].mark
        steps = round(qty / float(engine.specs["BTCUSDT"].step_f))
        acct.positions["BTCUSDT"] = SimPosition("BTCUSDT", steps, mark)
        if wallet is not None:
            acct.wallet = wallet

    handle._call(put)


def client_for(handle: Any, key: str, secret: str) -> GuardedClient:
    bus = EventBus()
    ex = make_exchange("sim", api_key=key, secret=secret, base_url=handle.base_url)
    return GuardedClient(Pipeline([], Transport(ex, bus), bus), ex, command="bench",
                         profile=None, run_id="bench-exit")  # fmt: skip


async def one(seed: int, policy: str, qty: float, wallet: float | None) -> dict[str, Any]:
    handle = start_in_thread(sim_config(seed), port=0)
    try:
        key, secret = handle.create_account(balance=10_000_000)
        time.sleep(0.3)  # a few market steps
        give_position(handle, key, qty, wallet)
        client = client_for(handle, key, secret)
        await client.load_markets()
        venue = ExitVenue(client, client.create_order, _cancel(client), client_position(client))
        res = await run_exit(venue, SYMBOL, policy, exit_config())
        await client.close()
        assert res is not None
        return res.to_dict() | {"sim_s": res.seconds * SPEED}
    finally:
        handle.stop()


def _cancel(client: GuardedClient) -> Any:
    async def cancel(order: dict[str, Any], symbol: str) -> Any:
        return await client.cancel_order(order.get("id"), symbol)

    return cancel


def mean_of(seeds: list[int], policy: str, qty: float, wallet: float | None) -> dict[str, Any]:
    """One exit per seed; shortfall and time averaged, the worst fill the worst seen."""
    runs = [asyncio.run(one(seed, policy, qty, wallet)) for seed in seeds]
    out = dict(runs[-1])
    out["shortfall_bps"] = sum(r["shortfall_bps"] for r in runs) / len(runs)
    out["sim_s"] = sum(r["sim_s"] for r in runs) / len(runs)
    out["children"] = sum(len(r["orders"]) for r in runs) / len(runs)
    out["left"] = max(abs(r["left"]) for r in runs)
    fills = [r["worst_fill"] for r in runs if r["worst_fill"]]
    out["worst_fill"] = min(fills) if fills else None  # a long sells: the lowest
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--sizes", default="1,5,20")
    args = ap.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    seeds = list(range(1, args.seeds + 1))
    print(f"{'size':>5} {'policy':<24} {'shortfall bps':>13} {'to flat s':>9} "
          f"{'worst fill':>10} {'children':>8} left")  # fmt: skip
    by: dict[tuple[float, str], dict[str, Any]] = {}
    for size in sizes:
        for policy in POLICIES:
            r = mean_of(seeds, policy, size * TOP, None)
            by[(size, policy)] = r
            print(f"{size:>4g}x {policy:<24} {r['shortfall_bps']:>13.1f} {r['sim_s']:>9.1f} "
                  f"{r['worst_fill'] or 0:>10.1f} {r['children']:>8.1f} {r['left']:g}")  # fmt: skip
    if 5.0 in sizes:
        m, a = by[(5.0, "market")]["shortfall_bps"], by[(5.0, "adaptive")]["shortfall_bps"]
        better = (m - a) / m * 100 if m else 0.0
        print(
            f"at 5x: adaptive {a:.1f} bps vs market {m:.1f} bps: {better:.0f}% better "
            f"(target >= 50%)"
        )
    print("liquidation 0.8% away (wallet 1.2% of notional):")
    for size in sizes:
        wallet = size * TOP * 60000 * 0.012
        rows = {p: mean_of(seeds, p, size * TOP, wallet) for p in ("market", "adaptive")}
        m, a = rows["market"], rows["adaptive"]
        print(
            f"{size:>4g}x  market {m['sim_s']:.1f} s  adaptive {a['sim_s']:.1f} s  "
            f"({'not slower' if a['sim_s'] <= m['sim_s'] * 1.05 + 0.5 else 'SLOWER'}); "
            f"adaptive said: {(a['switches'] or ['-'])[0]}"
        )


if __name__ == "__main__":
    main()
