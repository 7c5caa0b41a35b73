"""A breakout trend taker whose every position stands behind an exchange-side stop.

Samples the mark price every tick. When the mark breaks above the highest mark of the last
``lookback`` ticks it goes long, below the lowest it goes short (closing the old side first
with a reduce-only market order). It never places a stop itself: ``[protect]`` in its
strategy.toml makes the engine keep a ``closePosition`` stop (and a take-profit) on the
exchange for whatever position it holds, replaced when the position changes. So if this bot
dies (SIGKILL, power cut, a hung strategy), its position still has its stop.

It also trails a profitable position: once the position is ``trail_after_pct`` in profit it
adds a reduce-only trailing stop (``callback_pct``) on top of the fixed one.
"""

from __future__ import annotations

import math
from collections import deque

from pydantic import BaseModel, ConfigDict, Field

from perpbot.engine import Context, OrderRejected, PositionChange, Strategy


class ProtectedTrendParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lookback: int = Field(default=20, ge=2)
    order_notional: float = Field(default=200.0, gt=0)
    trail_after_pct: float = Field(default=1.0, gt=0)
    callback_pct: float = Field(default=0.8, ge=0.1, le=10.0)


class ProtectedTrend(Strategy):
    Params = ProtectedTrendParams
    params: ProtectedTrendParams

    def on_start(self, ctx: Context) -> None:
        ctx.state["marks"] = {s: deque(maxlen=self.params.lookback) for s in ctx.symbols}
        ctx.state["trailing"] = {}

    def on_tick(self, ctx: Context) -> None:
        if ctx.kill_state is not None:
            return
        for symbol in ctx.symbols:
            self._tick_symbol(ctx, symbol)

    def _tick_symbol(self, ctx: Context, symbol: str) -> None:
        mark = ctx.mark(symbol)
        marks: deque[float] = ctx.state["marks"][symbol]
        full = len(marks) == marks.maxlen
        high, low = (max(marks), min(marks)) if marks else (mark, mark)
        marks.append(mark)
        position = ctx.position(symbol)
        if full and (mark > high or mark < low):
            target = 1 if mark > high else -1
            current = (position.amount > 0) - (position.amount < 0)
            if target != current:
                self._enter(ctx, symbol, target, position.amount, mark)
                return
        self._trail(ctx, symbol, position.amount, position.entry_price, mark)

    def _enter(self, ctx: Context, symbol: str, target: int, held: float, mark: float) -> None:
        info = ctx.market_info(symbol)
        steps = math.ceil(self.params.order_notional / mark / info.step_size)
        amount = ctx.round_amount(symbol, steps * info.step_size)
        try:
            if held:
                side = "sell" if held > 0 else "buy"
                ctx.market_order(symbol, side, abs(held), reduce_only=True, intent="exit")
            ctx.market_order(symbol, "buy" if target > 0 else "sell", amount, intent="entry")
            ctx.state["trailing"].pop(symbol, None)
            ctx.log(f"{'long' if target > 0 else 'short'} {amount:g} {symbol} on a breakout")
        except OrderRejected as exc:
            ctx.log(f"entry refused: {exc}")

    def _trail(
        self, ctx: Context, symbol: str, held: float, entry: float | None, mark: float
    ) -> None:
        p = self.params
        if not held or not entry or ctx.state["trailing"].get(symbol) == held:
            return
        gain = (mark - entry) / entry * 100.0 * (1 if held > 0 else -1)
        if gain < p.trail_after_pct:
            return
        try:
            side = "sell" if held > 0 else "buy"
            ctx.trailing_stop_order(symbol, side, abs(held), p.callback_pct, intent="trail")
            ctx.state["trailing"][symbol] = held
            ctx.log(f"{symbol} {gain:.2f} % in profit: trailing stop {p.callback_pct:g} % added")
        except OrderRejected as exc:
            ctx.log(f"trailing stop refused: {exc}")

    def on_position_change(self, ctx: Context, change: PositionChange) -> None:
        """[protect] keeps the exchange-side stop in step; the strategy just says so."""
        ctx.log(f"{change.symbol} position {change.before:g} -> {change.after:g}")
