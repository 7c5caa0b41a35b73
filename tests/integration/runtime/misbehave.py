"""A strategy for the isolation tests: it lays one far post-only bid, then misbehaves.

``mode``: ``exit`` (the process ends itself: os._exit), ``raise_exit`` (sys.exit from a
callback: a traceback in the run folder), ``memory`` (allocates past ``[strategy]
memory_mb``, every tick).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from perpbot.engine import Context, Strategy


class Misbehave(Strategy):
    def on_tick(self, ctx: Context) -> None:
        mode: Any = self.params["mode"]
        symbol = ctx.symbols[0]
        if not ctx.state.get("laid"):
            mid = ctx.mid(symbol)
            ctx.post_only_order(symbol, "buy", 0.002, ctx.round_price(symbol, mid * 0.97))
            ctx.state["laid"] = True
            ctx.log("laid")
            return
        if mode == "exit":
            os._exit(3)
        if mode == "raise_exit":
            sys.exit("the strategy gave up")
        if mode == "memory":
            ctx.state["hog"] = bytearray(4 * 1024 * 1024 * 1024)
