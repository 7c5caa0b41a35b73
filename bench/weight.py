"""Weight per minute at steady state of one single-symbol grid bot at tick_interval = 1,
on streams and on REST polling, side by side in one run (each bot on its own simulator,
both at once, so machine load hits both alike). The weight is the simulator's own count
(every REST call either client makes, ccxt.pro's listenKey and book snapshots included).
Target: streams <= 48 weight/min (2 % of Binance's 2,400 per-IP budget).

    python bench/weight.py [--seconds 120] [--warmup 20] [--no-deadman]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.support.gridrun import GridRun, run_grid, throwaway_home

BUDGET, TARGET = 2400.0, 48.0


def line(r: GridRun) -> str:
    top = ", ".join(f"{p} x{n}" for p, n in r.paths.most_common(6))
    return (
        f"{'streams' if r.streams else 'polling':8} {r.per_minute:8.1f} weight/min "
        f"({r.per_minute / BUDGET:6.1%} of 2,400)  fills {r.fills:4d}  calls: {top}"
    )


async def main(args: argparse.Namespace) -> int:
    kw = {"warmup": args.warmup, "seconds": args.seconds, "deadman": not args.no_deadman}
    streams, polling = await asyncio.gather(
        run_grid(streams=True, **kw), run_grid(streams=False, **kw)
    )
    print(
        f"grid bot, 1 symbol, tick_interval = 1, {args.seconds:g} s measured after "
        f"{args.warmup:g} s warm-up, dead-man {'off' if args.no_deadman else 'on'}"
    )
    print(line(streams))
    print(line(polling))
    ok = streams.per_minute <= TARGET
    print(f"target streams <= {TARGET:g} weight/min: {'met' if ok else 'NOT met'}")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--warmup", type=float, default=20.0)
    p.add_argument("--no-deadman", action="store_true")
    throwaway_home()
    sys.exit(asyncio.run(main(p.parse_args())))
