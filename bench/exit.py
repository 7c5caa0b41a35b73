"""Exit policies side by side on a thin simulated book with lasting impact.

For positions of 1x, 5x and 20x the top-of-book depth, each policy closes a long on the
simulator (over HTTP, ccxt, the same executor ``perpbot flatten`` uses) and the bench prints
the implementation shortfall vs the arrival mark (bps), the time to flat (exchange seconds)
and the worst child's average fill. A last block puts liquidation 0.8 % away and compares
``adaptive`` with ``market`` on time to flat, the two policies' runs interleaved seed by seed.

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
  5 s half-life. Only a trade that moves the touch leaves lasting impact: children that
  each clear levels pay about 0.3 x the market order's walk in all (slicing saves at most
  ~70 % of the walk), while children that take part of the best level and leave it
  standing (the executor's slices since issue 19's second pass) leave almost none;
* calm: ``volatility`` 3e-5 / sqrt(s), no jumps, 0.5 synthetic takers per second.

Before the table the bench measures that book on its own (seed 1, another account, the
price's walk and the synthetic takers stopped so that only the book moves): the top
level, the depth within 10 bps, what a market sell of 1x / 5x / 20x would walk, and after a
5x sweep how far the best bid stays moved at 5, 10, 20 and 40 exchange seconds (refill
half-life and permanent share as the book shows them).

The exits are paced at the half-life (one child every 5 exchange seconds). The clock runs
10x, so 1 wall second is 10 exchange seconds; the position is placed on the account at the
mark (a bench set-up: opening it with orders would move the book before the exit starts).

Noise, and how the estimate removes it: a sliced 5x exit lasts about 90 exchange seconds,
over which the price's own walk moves about 3 bps (one standard deviation), most of the
spread between seeds. The simulator's walk is exogenous (its draws do not depend on the
orders: tests/sim/test_exogenous_walk.py), so

* common random numbers: every policy runs on the same seeds, and comparisons are paired
  by seed (the same walk, book draws and arrival-mark offset);
* control variate: after each child the bench reads the walk (``SymbolMarket.walk_log``)
  and weighs its move since the start by what the child filled: what the walk alone did to
  the exit's average price, in bps. Its expectation is zero (a martingale; the children's
  sizes come from the book, not from where the walk goes), so subtracting it at a fitted
  coefficient estimates the same expected shortfall with less noise. The table prints the
  raw mean, the controlled one and the control's own mean (a check: it should be near 0);
  the comparisons print raw, fitted and coefficient-1 (unfitted) estimates. Not applied to
  passive-then-aggressive: a resting order fills when the price comes to it, so there the
  weights depend on the walk's direction.

    .venv/bin/python bench/exit.py [--seeds 3] [--first-seed 1] [--sizes 1,5,20]
                                   [--policies market,slices,passive-then-aggressive,adaptive]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from dataclasses import dataclass
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


def walk_now(handle: Any) -> float:
    """The simulator's exogenous walk (log, since its start) now: the price's own moves,
    none of the orders' impact (``SymbolMarket.walk_log``)."""

    def read() -> float:
        engine = handle.server.engine
        engine.sync()
        return float(engine.markets["BTCUSDT"].walk_log)

    return handle._call(read)


async def one(seed: int, policy: str, qty: float, wallet: float | None) -> dict[str, Any]:
    handle = start_in_thread(sim_config(seed), port=0)
    try:
        key, secret = handle.create_account(balance=10_000_000)
        time.sleep(0.3)  # a few market steps
        give_position(handle, key, qty, wallet)
        client = client_for(handle, key, secret)
        await client.load_markets()
        fills: list[tuple[float, float]] = []  # (qty a child filled when placed, walk then)

        async def place(spec: OrderSpec) -> dict[str, Any]:
            order = await client.create_order(spec)
            fills.append((float(order.get("filled") or 0.0), walk_now(handle)))
            return order

        venue = ExitVenue(client, place, _cancel(client), client_position(client))
        start = walk_now(handle)
        res = await run_exit(venue, SYMBOL, policy, exit_config())
        await client.close()
        assert res is not None
        return res.to_dict() | {
            "sim_s": res.seconds * SPEED,
            "drift_bps": drift_bps(fills, start, policy),
        }
    finally:
        handle.stop()


def drift_bps(fills: list[tuple[float, float]], start: float, policy: str) -> float | None:
    """The control variate: what the exogenous walk alone did to this exit's fills, as a
    cost in bps of a long's sale (the walk down is a cost), each child weighted by what it
    filled when placed. Its expectation is zero: the walk is a martingale (its draws are
    independent of the orders, tests/sim/test_exogenous_walk.py) and the children's sizes
    come from the book's depth, not from where the walk goes. None for
    passive-then-aggressive: a resting order fills when the price comes to it, so its
    weights depend on the walk's direction and the expectation is no longer zero."""
    if policy == "passive-then-aggressive":
        return None
    total = sum(q for q, _ in fills)
    if not total:
        return 0.0
    return -sum(q * (math.exp(w - start) - 1.0) for q, w in fills) / total * 10_000


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


@dataclass(frozen=True)
class Controlled:
    """A mean over seeds with the control variate's fitted share taken out."""

    mean: float
    se: float
    beta: float  # fitted coefficient on the control (1 expected: the fills ride the walk)


def controlled(ys: list[float], ds: list[float]) -> Controlled:
    """E[y] estimated as mean(y) - beta (mean(d) - 0), beta fitted by least squares over
    the seeds (E[d] = 0 in the simulator); the standard error is the regression's at d = 0.
    Same quantity as the raw mean, less noise when y rides d."""
    n = len(ys)
    dbar, ybar = statistics.fmean(ds), statistics.fmean(ys)
    sxx = sum((d - dbar) ** 2 for d in ds)
    if n < 3 or sxx <= 0:
        return Controlled(ybar, _se(ys), 0.0)
    beta = sum((d - dbar) * (y - ybar) for d, y in zip(ds, ys, strict=True)) / sxx
    resid = [y - ybar - beta * (d - dbar) for d, y in zip(ds, ys, strict=True)]
    s2 = sum(r * r for r in resid) / (n - 2)
    return Controlled(ybar - beta * dbar, math.sqrt(s2 * (1 / n + dbar**2 / sxx)), beta)


def ratio(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """mean(xs) / mean(ys) over paired seeds and its standard error (delta method)."""
    r = statistics.fmean(xs) / statistics.fmean(ys)
    z = [(x - r * y) / statistics.fmean(ys) for x, y in zip(xs, ys, strict=True)]
    return r, _se(z)


def mean_of(seeds: list[int], policy: str, qty: float, wallet: float | None) -> dict[str, Any]:
    """One exit per seed; shortfall and time averaged, the worst fill the worst seen."""
    return summary([asyncio.run(one(seed, policy, qty, wallet)) for seed in seeds])


def interleaved(
    seeds: list[int], policies: tuple[str, str], qty: float, wallet: float | None
) -> dict[str, dict[str, Any]]:
    """``mean_of`` for two policies, run seed by seed in turns (each goes first on every
    other seed): a drift in the machine's load over the run falls on both alike."""
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in policies}
    for i, seed in enumerate(seeds):
        for p in policies if i % 2 == 0 else policies[::-1]:
            runs[p].append(asyncio.run(one(seed, p, qty, wallet)))
    return {p: summary(r) for p, r in runs.items()}


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Runs of one policy, one per seed: shortfall and time averaged, the worst fill the
    worst seen."""
    out = dict(runs[-1])
    out["runs_bps"] = [r["shortfall_bps"] for r in runs]
    out["shortfall_bps"] = statistics.fmean(out["runs_bps"])
    out["se_bps"] = _se(out["runs_bps"])
    out["drifts"] = None if runs[0]["drift_bps"] is None else [r["drift_bps"] for r in runs]
    out["sliced"] = sum(1 for r in runs if r["switches"][:1] and "chose slices" in r["switches"][0])
    out["runs_s"] = [r["sim_s"] for r in runs]
    out["sim_s"] = statistics.fmean(out["runs_s"])
    out["children"] = sum(len(r["orders"]) for r in runs) / len(runs)
    out["left"] = max(abs(r["left"]) for r in runs)
    fills = [r["worst_fill"] for r in runs if r["worst_fill"]]
    out["worst_fill"] = min(fills) if fills else None  # a long sells: the lowest
    return out


def compare(name: str, base: dict[str, Any], other: dict[str, Any], target: str) -> None:
    """``other`` against ``base`` paired by seed: raw, with the walk subtracted at its
    fitted coefficient, and at the coefficient 1 (no fitting)."""
    saved = [x - y for x, y in zip(base["runs_bps"], other["runs_bps"], strict=True)]
    mean_b = base["shortfall_bps"]
    print(
        f"{name}: raw {statistics.fmean(saved):.2f} +- {_se(saved):.2f} bps saved of "
        f"{mean_b:.2f} = {statistics.fmean(saved) / mean_b:.0%} +- {_se(saved) / mean_b:.0%}"
        f" better{target}"
    )
    if base["drifts"] is None or other["drifts"] is None:
        return
    dd = [x - y for x, y in zip(base["drifts"], other["drifts"], strict=True)]
    c = controlled(saved, dd)
    fitted = [s - c.beta * d for s, d in zip(saved, dd, strict=True)]
    r, r_se = ratio(fitted, base["runs_bps"])
    ones = [s - d for s, d in zip(saved, dd, strict=True)]
    r1, r1_se = ratio(ones, base["runs_bps"])
    print(
        f"{' ' * len(name)}  walk subtracted (fitted {c.beta:.2f}): {c.mean:.2f} +- "
        f"{c.se:.2f} bps = {r:.0%} +- {r_se:.0%}; at coefficient 1: "
        f"{statistics.fmean(ones):.2f} +- {_se(ones):.2f} bps = {r1:.0%} +- {r1_se:.0%}; "
        f"the walk's own mean over these seeds {statistics.fmean(dd):+.2f} +- {_se(dd):.2f} "
        "bps (expected 0)"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=1)
    ap.add_argument("--sizes", default="1,5,20")
    ap.add_argument("--policies", default=",".join(POLICIES))
    args = ap.parse_args()
    sizes = [float(s) for s in args.sizes.split(",")]
    policies = [p for p in POLICIES if p in args.policies.split(",")]
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    asyncio.run(book_check(sizes))
    print(
        f"seeds {seeds[0]}-{seeds[-1]}; shortfall: mean over the seeds +- its standard error; "
        "'walk out': the same with the price's own walk over the exit subtracted (control "
        "variate, fitted coefficient); 'walk': that walk's cost over the exit, mean "
        "(expected 0)"
    )
    print(f"{'size':>5} {'policy':<24} {'shortfall bps':>14} {'walk out':>12} {'walk':>11} "
          f"{'to flat s':>9} {'worst fill':>10} {'children':>8} left")  # fmt: skip
    by: dict[tuple[float, str], dict[str, Any]] = {}
    for size in sizes:
        for policy in policies:
            r = mean_of(seeds, policy, size * TOP, None)
            by[(size, policy)] = r
            chose = f"  (chose slices {r['sliced']}/{len(seeds)})" if policy == "adaptive" else ""
            if r["drifts"] is None:
                out = f"{'-':>12}"
                walk = f"{'-':>11}"
            else:
                c = controlled(r["runs_bps"], r["drifts"])
                out = f"{c.mean:>6.2f} +-{c.se:>4.2f}"
                walk = f"{statistics.fmean(r['drifts']):>+5.2f} +-{_se(r['drifts']):>3.1f}"
            print(f"{size:>4g}x {policy:<24} {r['shortfall_bps']:>7.2f} +-{r['se_bps']:>4.2f} "
                  f"{out} {walk} {r['sim_s']:>9.1f} {r['worst_fill'] or 0:>10.1f} "
                  f"{r['children']:>8.1f} {r['left']:g}{chose}", flush=True)  # fmt: skip
    for size in sizes:
        if (size, "market") not in by:
            continue
        for policy in policies[1:]:
            target = " (target >= 50%)" if size == 5.0 and policy == "adaptive" else ""
            compare(f"{size:g}x {policy} vs market", by[(size, "market")],
                    by[(size, policy)], target)  # fmt: skip
        if (size, "slices") in by and (size, "adaptive") in by:
            compare(f"{size:g}x adaptive vs slices", by[(size, "slices")],
                    by[(size, "adaptive")], "")  # fmt: skip
    print(
        "liquidation 0.8% away (wallet 1.2% of notional), time to flat paired by seed "
        "(the two policies' runs interleaved):"
    )
    for size in sizes:
        wallet = size * TOP * 60000 * 0.012
        rows = interleaved(seeds, ("market", "adaptive"), size * TOP, wallet)
        m, a = rows["market"], rows["adaptive"]
        later = [y - x for x, y in zip(m["runs_s"], a["runs_s"], strict=True)]
        print(
            f"{size:>4g}x  market {m['sim_s']:.2f} s  adaptive {a['sim_s']:.2f} s  "
            f"(adaptive later by {statistics.fmean(later):+.2f} +- {_se(later):.2f} s, at "
            f"most {max(later):+.2f} s; "
            f"{'not slower' if a['sim_s'] <= m['sim_s'] * 1.05 + 0.5 else 'SLOWER'}); "
            f"adaptive said: {(a['switches'] or ['-'])[0]}"
        )


if __name__ == "__main__":
    main()
