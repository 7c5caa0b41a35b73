"""A strategy for the stop tests: lays one far post-only order, then ``ctx.cancel_all``.

It logs how many of its own orders the exchange still lists after the cancel, then idles.
"""

from __future__ import annotations

import math

from perpbot.engine import Strategy
from perpbot.engine.context import Context


class CancelAll(Strategy):
    def on_tick(self, ctx: Context) -> None:
        if ctx.state.get("done"):
            return
        symbol = ctx.symbols[0]
        mid = ctx.mid(symbol)
        info = ctx.market_info(symbol)
        steps = math.ceil(info.min_notional * 1.2 / mid / info.step_size)
        amount = ctx.round_amount(symbol, steps * info.step_size)
        ctx.post_only_order(symbol, "buy", amount, ctx.round_price(symbol, mid * 0.97))
        ctx.cancel_all(symbol)
        ctx.log(f"own open after cancel_all: {len(ctx.open_orders(symbol))}")
        ctx.state["done"] = True
