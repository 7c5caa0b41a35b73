"""A strategy for the stop tests whose set-up fails: ``on_start`` raises."""

from __future__ import annotations

from perpbot.engine import Strategy
from perpbot.engine.context import Context


class FailsOnStart(Strategy):
    def on_start(self, ctx: Context) -> None:
        raise RuntimeError("cannot load my model")

    def on_tick(self, ctx: Context) -> None:
        ctx.market_order(ctx.symbols[0], "buy", 0.01)
