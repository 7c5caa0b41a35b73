"""A strategy for the restart tests: on its first tick it says what it holds and probes the
risk gate's reduce-only room with two reduce-only post-only orders far from the touch (they
rest until the stop cancels them): one for the position plus one step (the gate must refuse
it) and one for the whole position (the gate must let it through). Then it idles."""

from __future__ import annotations

from perpbot.engine import Strategy
from perpbot.engine.context import Context
from perpbot.engine.strategy import OrderRejected


class RestartProbe(Strategy):
    def on_tick(self, ctx: Context) -> None:
        if ctx.state.get("probed"):
            return
        ctx.state["probed"] = True
        for symbol in ctx.symbols:
            held = ctx.position(symbol).amount
            ctx.log(f"probe position {symbol} {held:g}")
            if not held:
                continue
            side = "sell" if held > 0 else "buy"
            far = ctx.round_price(symbol, ctx.mid(symbol) * (1.01 if side == "sell" else 0.99))
            step = ctx.market_info(symbol).step_size
            for label, wanted in (("over", abs(held) + 1.5 * step), ("all", abs(held))):
                amount = ctx.round_amount(symbol, wanted)
                try:
                    ctx.limit_order(symbol, side, amount, far, reduce_only=True, post_only=True)
                    ctx.log(f"probe reduce_only {label} {amount:g} accepted")
                except OrderRejected as exc:
                    ctx.log(f"probe reduce_only {label} {amount:g} refused {exc.code}")
