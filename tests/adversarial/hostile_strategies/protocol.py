"""Speaks the engine's protocol directly: private methods, dunder names, spoofed fields."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from perpbot.engine import Context
from tests.adversarial.hostile_strategies.base import Hostile

BTC = "BTC/USDT:USDT"


class Protocol(Hostile):
    def attacks(self, ctx: Context) -> dict[str, Callable[[], Any]]:
        port = ctx._port  # the one object that talks to the engine

        def raw(name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
            return port.call(name, args, kwargs)

        spoofed = {"symbol": BTC, "side": "buy", "amount": 0.002, "price": 1.0,
                   "client_order_id": "someone-else-1"}  # fmt: skip
        return {
            "a private engine method": lambda: raw("_run", [], {}),
            "a dunder through the port": lambda: raw("__class__", [], {}),
            "the engine's runner by name": lambda: raw("_runner", [], {}),
            "a spoofed client order id": lambda: raw("place_orders", [[spoofed]], {}),
            "an order past its keywords": lambda: raw(
                "market_order", [BTC, "buy", 0.002], {"spec": {"type": "market"}}
            ),
        }
