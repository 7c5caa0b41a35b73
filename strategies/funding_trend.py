"""A moving-average trend taker that respects funding.

Samples the mark price every tick. When the fast average crosses the slow one it targets a
long (fast above) or a short (fast below). Before reversing it closes the old side with a
reduce-only market order. When the funding rate is against the target side (a long pays
positive funding, a short pays negative), it enters with ``funding_size_factor`` of its
size. The position never exceeds ``max_position_notional``. Its fills are reported with
``on_fill`` (an event), not by polling.
"""

from __future__ import annotations

import math
from collections import deque

from pydantic import BaseModel, ConfigDict, Field, model_validator

from perpbot.engine import Context, Fill, OrderRejected, Strategy


class TrendParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    fast: int = Field(default=3, ge=1)
    slow: int = Field(default=8, ge=2)
    order_notional: float = Field(default=300.0, gt=0)
    funding_threshold: float = Field(default=0.0001, ge=0)
    funding_size_factor: float = Field(default=0.5, gt=0, le=1)
    max_position_notional: float = Field(default=600.0, gt=0)

    @model_validator(mode="after")
    def _fast_below_slow(self) -> TrendParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be smaller than slow ({self.slow})")
        return self


class FundingTrend(Strategy):
    Params = TrendParams
    params: TrendParams

    def on_start(self, ctx: Context) -> None:
        ctx.state["marks"] = {s: deque(maxlen=self.params.slow) for s in ctx.symbols}

    def on_tick(self, ctx: Context) -> None:
        if ctx.kill_state is not None:
            return
        for symbol in ctx.symbols:
            self._tick_symbol(ctx, symbol)

    def _tick_symbol(self, ctx: Context, symbol: str) -> None:
        p = self.params
        funding = ctx.funding(symbol)
        mark = float(funding["markPrice"])
        rate = float(funding.get("fundingRate") or 0.0)
        marks: deque[float] = ctx.state["marks"][symbol]
        marks.append(mark)
        if len(marks) < p.slow:
            return
        fast = sum(list(marks)[-p.fast :]) / p.fast
        slow = sum(marks) / len(marks)
        target = 1 if fast > slow else -1 if fast < slow else 0
        position = ctx.position(symbol).amount
        current = (position > 0) - (position < 0)
        if target == 0 or target == current:
            return
        try:
            if current != 0:  # close the old side first, reduce-only
                side = "sell" if position > 0 else "buy"
                ctx.market_order(symbol, side, abs(position), reduce_only=True, intent="exit")
            notional = p.order_notional
            against = (target > 0 and rate > p.funding_threshold) or (
                target < 0 and rate < -p.funding_threshold
            )
            if against:
                notional *= p.funding_size_factor
                ctx.log(
                    f"funding {rate:+.5f} is against a {'long' if target > 0 else 'short'}: "
                    f"sizing down to {notional:.0f} USDT"
                )
            notional = min(notional, p.max_position_notional)
            info = ctx.market_info(symbol)
            notional = max(notional, info.min_notional * 1.05)
            amount = ctx.round_amount(
                symbol, math.ceil(notional / mark / info.step_size) * info.step_size
            )
            side = "buy" if target > 0 else "sell"
            ctx.market_order(symbol, side, amount, intent=f"enter-{side}")
        except OrderRejected as exc:
            ctx.log(f"order not placed: {exc.sentence}")

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """Fills arrive as events (the engine reconciles before every tick, so the next
        tick's ``ctx.position`` already holds them: no ``ctx.refresh()`` needed)."""
        ctx.log(f"{fill.intent or 'fill'}: {fill.side} {fill.amount:g} {fill.symbol} "
                f"@ {fill.price:g} (slippage {fill.slippage_bps or 0.0:+.1f} bps)")  # fmt: skip
