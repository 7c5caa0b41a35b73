"""The strategy bench/strategy_ipc.py times: ``on_start`` makes ``params.calls`` cheap
``ctx.position`` calls (the engine answers from memory: no exchange in the loop) and
``on_save`` hands back each call's round trip in ns."""

from __future__ import annotations

import time
from typing import Any

from perpbot.engine import Context, Strategy


class IpcBench(Strategy):
    def on_start(self, ctx: Context) -> None:
        symbol = ctx.symbols[0]
        self.samples = []
        for _ in range(int(self.params["calls"])):
            t0 = time.perf_counter_ns()
            ctx.position(symbol)
            self.samples.append(time.perf_counter_ns() - t0)

    def on_save(self, ctx: Context) -> dict[str, Any]:
        return {"ns": self.samples}
