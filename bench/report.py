"""How long `perpbot runs` and `perpbot report` take on big run folders, and peak memory.

Writes synthetic run folders (the journal format of perpbot.engine.journal) into a temporary
$PERPBOT_HOME: one long run (default a day of 1 s ticks: 86,400 ticks, 5,000 fills, 500
events, with rate and index extras) plus N short finished runs and a few crashed ones, then
times, in process:
    list_runs()              over every folder (what `perpbot runs` does)
    build_report(long run)   load + series + tables + figure
    png / html rendering     of that figure
and prints wall times, the PNG/HTML sizes and the peak RSS of this process.

    python bench/report.py [TICKS] [RUNS]
"""

from __future__ import annotations

import os
import random
import resource
import sys
import tempfile
import time


def write_long_run(run_id: str, ticks: int, fills: int, events: int) -> None:
    from perpbot.engine.journal import RunJournal

    rng = random.Random(1)
    j = RunJournal(run_id)
    t0 = time.time() - ticks
    sym = "BTC/USDT:USDT"
    j.meta({"run_id": run_id, "strategy": "grid", "symbols": [sym], "started_at": t0, "pid": 1})
    price, equity, every = 60_000.0, 10_000.0, max(1, ticks // max(fills, 1))
    for i in range(ticks):
        price *= 1 + rng.gauss(0, 3e-4)
        equity += rng.gauss(0, 0.5)
        j.tick(
            {
                "ts": t0 + i,
                "marks": {sym: price},
                "positions": {sym: {"amount": 0.003 * (i % 7 - 3), "upnl": 0.1}},
                "equity": equity,
                "orders": {"placed": i, "filled": i // 3},
                "rate": {"weight_used": i % 2400, "weight_limit": 2280, "weight_nominal": 2400},
                "risk": {"index": {sym: {"price": price * 1.0001, "healthy": True}}},
            }
        )
        if i % every == 0:
            j.fill(
                {
                    "ts": t0 + i + 0.5,
                    "symbol": sym,
                    "side": "buy" if i % 2 else "sell",
                    "price": price,
                    "amount": 0.003,
                    "cost": price * 0.003,
                    "fee": 0.036,
                    "maker": bool(i % 3),
                    "realized_pnl": 0.01,
                    "decided_price": price * 0.9999,
                    "slippage_bps": 1.0,
                }
            )
        if i % max(1, ticks // max(events, 1)) == 0:
            action = ("alert", "tighten", "recover", "reject")[i % 4]
            j.event({"ts": t0 + i, "layer": "x", "action": action, "code": "X", "sentence": "s"})
    j.summary({"run_id": run_id, "end_reason": "duration", "ended_at": t0 + ticks, "net_pnl": 1})
    j.close()


def write_short_runs(n: int) -> None:
    from perpbot.engine.journal import RunJournal

    for k in range(n):
        j = RunJournal(f"short-{k:04d}")
        start = time.time() - 10_000 + k
        j.meta({"run_id": f"short-{k:04d}", "strategy": "grid", "started_at": start, "pid": 1})
        for i in range(60):
            j.tick({"ts": start + i, "equity": 10_000.0, "marks": {}, "positions": {}})
        if k % 10:  # every tenth run "crashed": no summary
            j.summary({"end_reason": "duration", "runtime_s": 60.0, "net_pnl": 0.5})
        j.close()


def main() -> None:
    ticks = int(sys.argv[1]) if len(sys.argv) > 1 else 86_400
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    with tempfile.TemporaryDirectory() as home:
        os.environ["PERPBOT_HOME"] = home
        from perpbot.report.build import build_report
        from perpbot.report.runs import list_runs, resolve_run

        t = time.perf_counter()
        write_long_run("long-run", ticks, 5_000, 500)
        write_short_runs(runs)
        print(
            f"wrote 1 run of {ticks} ticks + {runs} short runs in {time.perf_counter() - t:.1f} s"
        )

        t = time.perf_counter()
        listed = list_runs()
        print(f"list_runs: {len(listed)} runs in {time.perf_counter() - t:.3f} s")

        t = time.perf_counter()
        rep = build_report(resolve_run("long-run"))
        print(f"build_report ({ticks} ticks, 5000 fills): {time.perf_counter() - t:.2f} s")
        t = time.perf_counter()
        png = rep.write_png(rep.run.dir / "report.png")
        print(f"png: {time.perf_counter() - t:.2f} s, {len(png) / 1e3:.0f} kB")
        t = time.perf_counter()
        rep.write_html(rep.run.dir / "report.html", png)
        size = (rep.run.dir / "report.html").stat().st_size
        print(f"html: {time.perf_counter() - t:.2f} s, {size / 1e3:.0f} kB")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS: {peak:.0f} MB")


if __name__ == "__main__":
    main()
