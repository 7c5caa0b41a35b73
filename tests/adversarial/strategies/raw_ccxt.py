"""A strategy run in the engine's process (``isolation = "thread"``) that reaches past
``ctx`` to the ccxt object and calls the exchange with it directly."""

from __future__ import annotations

from typing import Any

from perpbot.engine import Context, Strategy

BTC = "BTC/USDT:USDT"


class RawCcxt(Strategy):
    def on_start(self, ctx: Context) -> None:
        engine: Any = ctx._port._context  # type: ignore[attr-defined]  # the engine's Context
        ex = engine._runner.client.exchange
        price = ctx.round_price(BTC, ctx.mid(BTC) * 0.97)
        calls = {
            "create_order": lambda: ex.create_order(BTC, "limit", "buy", 0.002, price),
            "set_leverage": lambda: ex.set_leverage(20, BTC),
            "fetch_balance": lambda: ex.fetch_balance(),
        }
        for name, call in calls.items():
            try:
                engine._run(call())
            except BaseException as exc:
                ctx.log(f"RAW {name} blocked: {type(exc).__name__}: {exc}"[:300])
            else:
                ctx.log(f"RAW {name} SUCCEEDED")
        ctx.log("RAW DONE")
