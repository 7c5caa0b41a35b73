"""What the process boundary adds to a strategy's ``ctx`` call (issue 17).

The same strategy (bench/support/ipc_strategy.py) makes N ``ctx.position`` calls, once
with ``isolation = "thread"`` (the runtime calls the engine's Context in-process) and once
with ``isolation = "process"`` (a confined child process: each call is a JSON frame over a
Unix socket to the engine, which answers through the same Context). The engine answers
from memory, so the figures are the boundary's own cost, not an exchange's. Both runs use
the real hosts (perpbot.engine.hosts, perpbot.engine.isolation.host); the engine side is a
stand-in run with positions only. Figures: p50/p99 per call for each, and the added
latency (process minus thread). Target: <= 200 µs added at p50.

    python bench/strategy_ipc.py [--calls 5000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

TARGET_US = 200.0
SYMBOL = "BTC/USDT:USDT"


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def run(isolation: str, calls: int, folder: Path) -> list[float]:
    import tomli_w

    from perpbot.config import load_strategy
    from perpbot.engine.context import Context
    from perpbot.engine.hosts import ThreadHost
    from perpbot.engine.isolation.host import ProcessHost
    from perpbot.engine.loader import instantiate
    from perpbot.engine.state import PositionSnapshot

    toml = folder / f"ipc-{isolation}.toml"
    doc = {
        "strategy": {
            "name": "ipc-bench",
            "file": str(Path(__file__).resolve().parent / "support" / "ipc_strategy.py"),
            "symbols": [SYMBOL],
            "isolation": isolation,
            "params": {"calls": calls},
        },
        "exchange": {"id": "sim"},
    }
    toml.write_text(tomli_w.dumps(doc))
    loaded = load_strategy(toml)
    strategy = None if isolation == "process" else instantiate(loaded)
    runner = SimpleNamespace(
        config=loaded.config,
        strategy=strategy,
        run_id=f"bench-{isolation}",
        positions={SYMBOL: PositionSnapshot(symbol=SYMBOL, amount=0.002, entry_price=60000.0)},
    )
    context = Context(runner)  # type: ignore[arg-type]
    file = loaded.resolve(loaded.config.strategy.file)
    host: Any
    if strategy is None:
        host = ProcessHost(loaded, runner.run_id)
        host.attach(context)
    else:
        host = ThreadHost(strategy, context, file)
    try:
        started = host.start(None).result(timeout=300)
        assert not started["errors"], started
        stopped = host.stop().result(timeout=60)
        assert not stopped["errors"], stopped
    finally:
        host.close()
    return [ns / 1000.0 for ns in stopped["saved"]["ns"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PERPBOT_HOME"] = str(Path(tmp) / "home")
        thread = run("thread", args.calls, Path(tmp))
        process = run("process", args.calls, Path(tmp))
    print(f"ctx.position x {args.calls} (warm; engine answers from memory)")
    for name, s in (("thread (in-process)", thread), ("process (isolated)", process)):
        print(f"  {name:<22} p50 {pct(s, 0.5):8.1f} µs   p99 {pct(s, 0.99):8.1f} µs")
    added50 = pct(process, 0.5) - pct(thread, 0.5)
    added99 = pct(process, 0.99) - pct(thread, 0.99)
    verdict = "meets" if added50 <= TARGET_US else "MISSES"
    print(f"  added by the boundary   p50 {added50:8.1f} µs   p99 {added99:8.1f} µs")
    print(f"  target <= {TARGET_US:g} µs added at p50: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
