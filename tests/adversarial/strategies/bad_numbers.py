"""A strategy that tries, on its first tick, every number an exchange should never see
(NaN, inf, -0.0, beyond the market's limits) and a lying decided price. It logs
each refusal's code as ``refused CODE`` and each order that went out as ``placed``."""

from __future__ import annotations

import math
from typing import Any

from perpbot.engine import Strategy
from perpbot.engine.context import Context
from perpbot.engine.strategy import OrderRejected

BTC = "BTC/USDT:USDT"


class BadNumbers(Strategy):
    def _try(self, ctx: Context, place: Any) -> None:
        try:
            place()
        except OrderRejected as exc:
            ctx.log(f"refused {exc.code}")
        else:
            ctx.log("placed")  # (the test looks for "strategy: placed")

    def on_tick(self, ctx: Context) -> None:
        if ctx.state.get("done"):
            return
        ctx.state["done"] = True
        mid = ctx.mid(BTC)
        # (strings: perpbot.engine.runner.Runner.place compares before the boundary sees
        # them; tests/adversarial/test_wire_orders.py sends them through the client)
        for amount in (math.nan, math.inf, -0.0, 1e9):
            self._try(ctx, lambda a=amount: ctx.market_order(BTC, "buy", a))
        for price in (math.nan, math.inf, -0.0, 1e12):
            self._try(ctx, lambda p=price: ctx.limit_order(BTC, "buy", 0.002, p))
        # "decided at 1.0": the risk layer values it at the market (2.5 BTC ~ 150k USDT)
        self._try(ctx, lambda: ctx.market_order(BTC, "buy", 2.5, decided_price=1.0))
        ctx.log(f"mid {mid:.2f}")
