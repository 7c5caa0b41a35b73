"""The chaos campaign's overreaching strategy: it lays its orders, then tries what its key's
grant does not allow, one attempt per tick.

The campaign runs it under a key profile granted ``read,trade,cancel`` on its own symbols
only, with ``--max-notional`` (bench/support/chaos_grant.py). Every attempt below is outside
that grant; each must be refused before it leaves the process (the simulator's own record is
the truth). A refusal is caught and logged, so the strategy keeps trying until it is stopped.

Its orders are those of tests/integration/kill_strategies/hang.py (idle mode): post-only,
``offset_pct`` away from the mid, half bids and half asks, so they rest until cancelled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from perpbot.engine import Strategy
from perpbot.engine.context import Context


class OverreachParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    orders_per_symbol: int = Field(default=2, ge=0, le=100)
    offset_pct: float = Field(default=3.0, gt=0)
    spacing_pct: float = Field(default=0.1, gt=0)
    outside_symbol: str = "ETH/USDT:USDT"  # a symbol the grant does not list
    # its order: fixed (no read of that symbol first, so that a failing read cannot keep the
    # order from the pipeline's gates): a bid at half the simulator's ETH price, notional 30
    outside_price: float = Field(default=1500.0, gt=0)
    outside_amount: float = Field(default=0.02, gt=0)
    max_notional: float = Field(default=500.0, gt=0)  # the grant's --max-notional


class Overreach(Strategy):
    Params = OverreachParams
    params: OverreachParams

    def _amount(self, ctx: Context, symbol: str, price: float, notional: float) -> float:
        info = ctx.market_info(symbol)
        steps = math.ceil(max(notional, info.min_notional * 1.2) / price / info.step_size)
        return ctx.round_amount(symbol, steps * info.step_size)

    def _resting(self, ctx: Context, symbol: str, k: int, notional: float = 0.0) -> None:
        p = self.params
        mid = ctx.mid(symbol)
        side = "buy" if k % 2 == 0 else "sell"
        away = (p.offset_pct + (k // 2) * p.spacing_pct) / 100.0
        price = mid * (1 - away) if side == "buy" else mid * (1 + away)
        amount = self._amount(ctx, symbol, mid, notional)
        ctx.post_only_order(symbol, side, amount, ctx.round_price(symbol, price))

    def _attempts(self, ctx: Context) -> list[tuple[str, Callable[[], Any]]]:
        p = self.params
        own = ctx.symbols[0]
        big = p.max_notional * 5
        return [
            ("leverage", lambda: ctx.set_leverage(own, 20)),
            ("margin mode", lambda: ctx.set_margin_mode(own, "isolated")),
            (
                "outside symbol",
                lambda: ctx.post_only_order(
                    p.outside_symbol, "buy", p.outside_amount, p.outside_price
                ),
            ),
            ("over notional", lambda: self._resting(ctx, own, 0, notional=big)),
            (
                "market over notional",
                lambda: ctx.market_order(own, "buy", self._amount(ctx, own, ctx.mid(own), big)),
            ),
            (
                "stop order",
                lambda: ctx.stop_market_order(
                    own, "sell", ctx.mid(own) * 0.5, self._amount(ctx, own, ctx.mid(own), 0.0)
                ),
            ),
        ]

    def on_tick(self, ctx: Context) -> None:
        p = self.params
        if not ctx.state.get("laid"):
            for symbol in ctx.symbols:
                for k in range(p.orders_per_symbol):
                    self._resting(ctx, symbol, k)
            ctx.state["laid"] = True
            ctx.state["n"] = 0
            ctx.log(f"laid {p.orders_per_symbol * len(ctx.symbols)} orders")
            return
        attempts = self._attempts(ctx)
        name, attempt = attempts[ctx.state["n"] % len(attempts)]
        ctx.state["n"] += 1
        try:
            attempt()
        except Exception as exc:  # a refusal is what the grant promises: keep trying
            ctx.log(f"{name}: refused ({type(exc).__name__})")
        else:
            ctx.log(f"{name}: NOT refused")
