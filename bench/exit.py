"""Exit policies side by side on a thin simulated book with lasting impact.

For positions of 1x, 5x and 20x the top-of-book depth, each policy closes a long on the
simulator (over HTTP, ccxt, the same executor ``perpbot flatten`` uses) and the bench prints
the implementation shortfall vs the arrival mark (bps), the time to flat (exchange seconds)
and the worst child's average fill. A last block puts liquidation 0.8 % away and compares
``adaptive`` with ``market`` on time to flat.

The book (the simulator's knobs, and why):

* ``crowd_level_qty`` 0.2 BTC per level, ``crowd_levels`` 10: the top of the book holds
  about 12 000 USDT, so the positions are 0.2, 1 and 4 BTC;
* ``crowd_level_step_ticks`` 120: levels 12 USDT (2 bps) apart, the way a thin perp's book
  is gappy behind the touch. It was 50 (0.8 bps): a 5x market sell then walked about 1.5 bps,
  no more than the arrival mark's own offset from the touch (the index's venue basket, about
  1 bp) and the price's drift over a sliced exit (about 2 bps over 35 s), so the table
  measured noise as much as impact. At 2 bps a 5x sell walks 2.5-5 bps (printed below);
* ``book_half_life_s`` 5 and ``impact_permanent`` 0.3: the simulator's defaults, unchanged.
  30 % of every sweep's move of the touch stays (lasting impact); the rest refills with a
  5 s half-life. The permanent share bounds what any slicing can save: on a book that
  refills between children, n children still pay about 0.3 x the market order's walk plus
  one child's walk, so slicing saves at most ~70 % of the walk;
* calm: ``volatility`` 3e-5 / sqrt(s), no jumps, 0.5 synthetic takers per second.

Before the table the bench measures that book on its own (seed 1, another account, the
price's walk and the synthetic takers stopped so that only the book moves): the top
level, the depth within 10 bps, what a market sell of 1x / 5x / 20x would walk, and after a
5x sweep how far the best bid stays moved at 5, 10, 20 and 40 exchange seconds (refill
half-life and permanent share as the book shows them).

The exits are paced at the half-life (one child every 5 exchange seconds). The clock runs
10x, so 1 wall second is 10 exchange seconds; the position is placed on the account at the
mark (a bench set-up: opening it with orders would move the book before the exit starts).

    .venv/bin/python bench/exit.py [--seeds 3] [--sizes 1,5,20]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from typing import Any

from perpbot.client.guarded import GuardedClient
from perpbot.client.pipeline import Pipeline
from perpbot.client.request import OrderSpec
from perpbot.client.transport import Transport, make_exchange
from perpbot.events import EventBus
from perpbot.exits import POLICIES, ExitConfig, ExitVenue, run_exit
from perpbot.exits.plan import depth_within, sweep
from perpbot.exits.venue import client_position
from perpbot.sim import SimConfig, start_in_thread
from perpbot.sim.config import MarketConfig, SymbolConfig
from perpbot.sim.models import SimPosition

SPEED = 10.0
SYMBOL = "BTC/USDT:USDT"
TOP = 0.2  # mean crowd size per level (BTC)
STEP_TICKS = 120  # 12 USDT = 2 bps between levels at 60 000
HALF_LIFE_S = 5.0  # the simulator's default refill half-life (exchange seconds)


def sim_config(seed: int) -> SimConfig:
    return SimConfig(
        seed=seed,
        clock_speed=SPEED,
        symbols=[SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0,
                              crowd_level_qty=TOP, crowd_levels=10,
                              crowd_level_step_ticks=STEP_TICKS)],
        market=MarketConfig(jump_rate=0.0, volatility=0.00003, taker_rate=0.5,
                            premium_vol=0.00005, premium_regime_vol=0.0,
                            impact_permanent=0.3, book_half_life_s=HALF_LIFE_S),
    )  # fmt: skip


def exit_config() -> ExitConfig:
    # paced in exchange time: one child every half-life of the book's refill
    return ExitConfig(
        pace_s=HALF_LIFE_S / SPEED,
        passive_step_s=HALF_LIFE_S / SPEED,
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


def _walk(book: list[list[float]], size: float) -> str:
    touch, w = book[0][0], sweep(book, size * TOP)
    beyond = (
        f", {size * TOP - w.filled:.2f} BTC beyond the levels shown"
        if w.filled < size * TOP
        else ""
    )
    return (
        f"{size:g}x {(touch - w.average) / touch * 1e4:.1f} bps "
        f"(to {(touch - w.worst) / touch * 1e4:.0f}{beyond})"
    )


async def book_check(sizes: list[float]) -> None:
    """The book this bench sets up, measured through the exchange's own order book (the
    price's walk and the synthetic takers stopped, so the refill is seen alone)."""
    cfg = sim_config(1)
    cfg.market = cfg.market.model_copy(update={"volatility": 0.0, "taker_rate": 0.0})
    handle = start_in_thread(cfg, port=0)
    try:
        key, secret = handle.create_account(balance=10_000_000)
        time.sleep(0.3)
        client = client_for(handle, key, secret)
        await client.load_markets()

        async def bids() -> list[list[float]]:
            ob = await client.fetch_order_book(SYMBOL, 100)
            return [[float(p), float(q)] for p, q, *_ in ob["bids"]]

        book = await bids()
        touch = book[0][0]
        walks = ", ".join(_walk(book, n) for n in sizes)
        print(
            f"book: top level {book[0][1]:g} BTC, {depth_within(book, 10):.2f} BTC within "
            f"10 bps of the bid, {len(book)} levels shown; a market sell walks on average "
            f"(worst level): {walks}"
        )
        await client.create_order(OrderSpec(SYMBOL, "sell", "market", 5 * TOP))
        t0 = time.monotonic()
        moved = touch - (await bids())[0][0]
        left = []
        for at in (5.0, 10.0, 20.0, 40.0):
            await asyncio.sleep(max(0.0, t0 + at / SPEED - time.monotonic()))
            left.append(f"{at:g} s {(touch - (await bids())[0][0]) / moved:.0%}")
        print(
            f"a 5x market sell moved the bid {moved:.1f} USDT; still moved after "
            f"{', '.join(left)} (set: refill half-life {HALF_LIFE_S:g} s, 30% stays; "
            "measured with the price's walk and the takers stopped)"
        )
        await client.close()
    finally:
        handle.stop()


def _se(xs: list[float]) -> float:
    """Standard error of the mean over seeds (0 for one seed)."""
    return statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else 0.0


def mean_of(seeds: list[int], policy: str, qty: float, wallet: float | None) -> dict[str, Any]:
    """One exit per seed; shortfall and time averaged, the worst fill the worst seen."""
    runs = [asyncio.run(one(seed, policy, qty, wallet)) for seed in seeds]
    out = dict(runs[-1])
    out["runs_bps"] = [r["shortfall_bps"] for r in runs]
    out["shortfall_bps"] = statistics.fmean(out["runs_bps"])
    out["se_bps"] = _se(out["runs_bps"])
    out["sliced"] = sum(1 for r in runs if r["switches"][:1] and "chose slices" in r["switches"][0])
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
    asyncio.run(book_check(sizes))
    print(
        f"shortfall: mean over {len(seeds)} seeds +- its standard error (the price's walk "
        "over a sliced exit is most of the spread between seeds)"
    )
    print(f"{'size':>5} {'policy':<24} {'shortfall bps':>14} {'to flat s':>9} "
          f"{'worst fill':>10} {'children':>8} left")  # fmt: skip
    by: dict[tuple[float, str], dict[str, Any]] = {}
    for size in sizes:
        for policy in POLICIES:
            r = mean_of(seeds, policy, size * TOP, None)
            by[(size, policy)] = r
            chose = f"  (chose slices {r['sliced']}/{len(seeds)})" if policy == "adaptive" else ""
            print(f"{size:>4g}x {policy:<24} {r['shortfall_bps']:>7.1f} +-{r['se_bps']:>4.1f} "
                  f"{r['sim_s']:>9.1f} {r['worst_fill'] or 0:>10.1f} {r['children']:>8.1f} "
                  f"{r['left']:g}{chose}", flush=True)  # fmt: skip
    if 5.0 in sizes:
        m, a = by[(5.0, "market")], by[(5.0, "adaptive")]
        # paired by seed: the same seed's market and adaptive exits
        saved = [x - y for x, y in zip(m["runs_bps"], a["runs_bps"], strict=True)]
        mean_m = m["shortfall_bps"]
        better = statistics.fmean(saved) / mean_m * 100 if mean_m else 0.0
        se = _se(saved) / mean_m * 100 if mean_m else 0.0
        print(
            f"at 5x: adaptive {a['shortfall_bps']:.1f} bps vs market {mean_m:.1f} bps: "
            f"{better:.0f}% +- {se:.0f}% better (target >= 50%)"
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
