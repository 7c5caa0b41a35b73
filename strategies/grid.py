"""A post-only grid market maker with an inventory cap and reduce-only exits.

Each tick: read the mid; if there is no grid or the mid drifted more than ``recenter_bps``
from the grid's centre, cancel and lay a fresh grid of post-only orders, ``levels`` per side,
``spacing_bps`` apart. A side whose inventory is at the cap gets no new orders. Any open
position is worked out with one reduce-only post-only order just past the mid.

Events instead of polling: ``on_fill`` counts and reports each fill, ``on_order_update``
reports refusals and expiries. The engine reconciles before every tick, so the position a
tick reads already holds every fill up to then; the exit is placed only in a tick that did
not cancel anything (the cancels' last fills are then known).
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

from perpbot.engine import Context, Fill, Order, OrderRejected, OrderUpdate, Strategy


class GridParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    levels: int = Field(default=3, ge=1, le=20)
    spacing_bps: float = Field(default=4.0, gt=0)
    order_notional: float = Field(default=150.0, gt=0)
    max_inventory_notional: float = Field(default=900.0, gt=0)
    recenter_bps: float = Field(default=8.0, gt=0)
    exit_bps: float = Field(default=3.0, gt=0)


class Grid(Strategy):
    Params = GridParams
    params: GridParams

    def on_start(self, ctx: Context) -> None:
        ctx.state["centre"] = {}
        ctx.state["fills"] = 0
        ctx.log(f"grid: {self.params.levels} levels/side, {self.params.spacing_bps} bps apart")

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        ctx.state["fills"] += 1
        ctx.log(f"grid fill #{ctx.state['fills']}: {fill.side} {fill.amount:g} @ {fill.price:g}")

    def on_order_update(self, ctx: Context, update: OrderUpdate) -> None:
        if update.status in ("rejected", "expired"):
            ctx.log(f"grid order {update.status} ({update.code}): {update.sentence}")

    def on_tick(self, ctx: Context) -> None:
        if ctx.kill_state is not None:
            return  # the kill switch stands: place nothing
        for symbol in ctx.symbols:
            self._tick_symbol(ctx, symbol)

    def _amount(self, ctx: Context, symbol: str, price: float) -> float:
        info = ctx.market_info(symbol)
        notional = max(self.params.order_notional, info.min_notional * 1.05)
        steps = math.ceil(notional / price / info.step_size)
        return ctx.round_amount(symbol, steps * info.step_size)

    def _tick_symbol(self, ctx: Context, symbol: str) -> None:
        p = self.params
        mid = ctx.mid(symbol)
        centre = ctx.state["centre"].get(symbol)
        orders = ctx.open_orders(symbol)
        grid_orders = [o for o in orders if not o.reduce_only]
        drift_bps = abs(mid - centre) / centre * 1e4 if centre else math.inf
        if not grid_orders or drift_bps > p.recenter_bps:
            if orders:
                ctx.cancel_all(symbol)
            self._lay_grid(ctx, symbol, mid)
            ctx.state["centre"][symbol] = mid
            if orders:
                return  # the exit waits for the next tick: its reconcile has the last fills
        self._work_exit(ctx, symbol, mid, [o for o in orders if o.reduce_only])

    def _lay_grid(self, ctx: Context, symbol: str, mid: float) -> None:
        p = self.params
        position = ctx.position(symbol).amount
        inventory = position * mid
        amount = self._amount(ctx, symbol, mid)
        for k in range(1, p.levels + 1):
            offset = k * p.spacing_bps / 1e4
            sides = []
            if inventory < p.max_inventory_notional:
                sides.append(("buy", mid * (1 - offset)))
            if inventory > -p.max_inventory_notional:
                sides.append(("sell", mid * (1 + offset)))
            for side, price in sides:
                try:
                    ctx.post_only_order(
                        symbol,
                        side,
                        amount,
                        ctx.round_price(symbol, price),
                        intent=f"grid-{side}-{k}",
                    )
                except OrderRejected as exc:
                    ctx.log(f"grid order not placed: {exc.sentence}")

    def _work_exit(self, ctx: Context, symbol: str, mid: float, exits: list[Order]) -> None:
        position = ctx.position(symbol).amount
        if position == 0 or exits:
            return
        side = "sell" if position > 0 else "buy"
        offset = self.params.exit_bps / 1e4
        price = mid * (1 + offset) if side == "sell" else mid * (1 - offset)
        amount = ctx.round_amount(symbol, abs(position))
        if amount <= 0:
            return
        try:
            ctx.limit_order(
                symbol,
                side,
                amount,
                ctx.round_price(symbol, price),
                post_only=True,
                reduce_only=True,
                intent="grid-exit",
            )
        except OrderRejected as exc:
            ctx.log(f"exit not placed: {exc.sentence}")
