"""A strategy for the kill-switch tests: it lays orders, then misbehaves on purpose.

``mode``:
- ``sleep``: after laying its orders, ``on_tick`` sleeps forever (a hung strategy);
- ``loop``: after laying its orders, ``on_tick`` spins in a busy loop forever;
- ``drip``: one more post-only order per tick (shows a halt pausing and a resume resuming);
- ``idle``: lays its orders once, then returns at once every tick (a healthy strategy).

Orders are post-only, ``offset_pct`` away from the mid, half bids and half asks, so they
rest until cancelled. ``open_position`` first buys that amount at market on each symbol
(with ``open_short`` on a hedge-mode account: a BUY LONG of ``open_position`` and a SELL
SHORT of ``open_short``).
"""

from __future__ import annotations

import math
import time
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from perpbot.engine import Strategy
from perpbot.engine.context import Context


class HangParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["sleep", "loop", "drip", "idle"] = "sleep"
    orders_per_symbol: int = Field(default=12, ge=0, le=100)
    offset_pct: float = Field(default=3.0, gt=0)
    spacing_pct: float = Field(default=0.1, gt=0)
    open_position: float = Field(default=0.0, ge=0)
    open_short: float = Field(default=0.0, ge=0)  # hedge mode: open_position LONG, this SHORT


class Hang(Strategy):
    Params = HangParams
    params: HangParams

    def _amount(self, ctx: Context, symbol: str, price: float) -> float:
        info = ctx.market_info(symbol)
        steps = math.ceil(info.min_notional * 1.2 / price / info.step_size)
        return ctx.round_amount(symbol, steps * info.step_size)

    def _order(self, ctx: Context, symbol: str, mid: float, k: int) -> None:
        p = self.params
        side = "buy" if k % 2 == 0 else "sell"
        away = (p.offset_pct + (k // 2) * p.spacing_pct) / 100.0
        price = mid * (1 - away) if side == "buy" else mid * (1 + away)
        ctx.post_only_order(
            symbol, side, self._amount(ctx, symbol, mid), ctx.round_price(symbol, price)
        )

    def on_tick(self, ctx: Context) -> None:
        p = self.params
        if not ctx.state.get("laid"):
            for symbol in ctx.symbols:
                if p.open_short:
                    ctx.market_order(symbol, "buy", p.open_position, position_side="LONG")
                    ctx.market_order(symbol, "sell", p.open_short, position_side="SHORT")
                elif p.open_position:
                    ctx.market_order(symbol, "buy", p.open_position)
                mid = ctx.mid(symbol)
                for k in range(p.orders_per_symbol):
                    self._order(ctx, symbol, mid, k)
            ctx.state["laid"] = True
            ctx.state["k"] = p.orders_per_symbol
            ctx.log(f"laid {p.orders_per_symbol * len(ctx.symbols)} orders")
        if p.mode == "sleep":
            while True:
                time.sleep(3600)
        if p.mode == "loop":
            n = 0
            while True:
                n += 1
        if p.mode == "drip":
            symbol = ctx.symbols[0]
            self._order(ctx, symbol, ctx.mid(symbol), ctx.state["k"])
            ctx.state["k"] += 1
