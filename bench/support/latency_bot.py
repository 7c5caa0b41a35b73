"""The bot bench/stream_latency.py measures: one post-only buy resting at the best bid."""

from __future__ import annotations

from perpbot.engine import OrderRejected, Strategy
from perpbot.engine.context import Context


class RestAtBid(Strategy):
    def on_tick(self, ctx: Context) -> None:
        symbol = ctx.symbols[0]
        if ctx.open_orders(symbol):
            return
        bid = ctx.order_book(symbol, 5)["bids"][0][0]
        try:
            ctx.post_only_order(symbol, "buy", 0.002, bid, intent="latency")
        except OrderRejected as exc:
            ctx.log(f"not placed: {exc.sentence}")
