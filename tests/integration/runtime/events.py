"""A strategy for the runtime tests: it records every callback it receives, in order.

Tick 1: a market buy, a far post-only bid and an order the engine refuses (amount -1).
Tick 2: cancels the far bid. A 0.2 s timer counts its firings. ``on_save`` keeps what was
seen (and how many runs saved before it), so the test reads the delivery order from the
state dir; ``on_load`` gets the previous run's.
"""

from __future__ import annotations

from typing import Any

from perpbot.engine import (
    Context,
    Fill,
    KillChange,
    OrderRejected,
    OrderUpdate,
    PositionChange,
    Strategy,
)


class Events(Strategy):
    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.seen: list[str] = []
        self.runs_before = 0
        self.timers = 0

    def on_load(self, ctx: Context, saved: dict[str, Any]) -> None:
        self.runs_before = int(saved.get("runs", 0))
        ctx.log(f"loaded runs={self.runs_before}")

    def on_start(self, ctx: Context) -> None:
        ctx.every(0.2, self.count)

    def count(self, ctx: Context) -> None:
        self.timers += 1

    def on_tick(self, ctx: Context) -> None:
        if self.seen and self.seen[-1] == "kill False":
            ctx.log("ticking again after the resume")
        self.seen.append("tick")
        symbol = ctx.symbols[0]
        step = ctx.state.get("step", 0)
        ctx.state["step"] = step + 1
        if step == 0:
            mid = ctx.mid(symbol)
            ctx.market_order(symbol, "buy", 0.002)
            far = ctx.post_only_order(symbol, "buy", 0.002, ctx.round_price(symbol, mid * 0.97))
            ctx.state["far"] = far.client_order_id
            try:
                ctx.market_order(symbol, "buy", -1.0)
            except OrderRejected as exc:
                ctx.log(f"refused {exc.code}")
        elif step == 1:
            ctx.cancel_order(ctx.state["far"], symbol)

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        self.seen.append(f"fill {fill.side} {fill.amount:g} {fill.raw['symbol']}")

    def on_order_update(self, ctx: Context, update: OrderUpdate) -> None:
        self.seen.append(f"order {update.status} {update.code}")

    def on_position_change(self, ctx: Context, change: PositionChange) -> None:
        self.seen.append(f"position {change.before:g} -> {change.after:g}")

    def on_kill(self, ctx: Context, change: KillChange) -> None:
        self.seen.append(f"kill {change.standing}")
        ctx.log(f"on_kill standing={change.standing} level={change.level} code={change.code}")

    def on_save(self, ctx: Context) -> dict[str, Any]:
        return {"runs": self.runs_before + 1, "seen": self.seen, "timers": self.timers}
