"""AccountView: the bot's latest knowledge of its positions and open orders.

Guards that judge an order against the account (a reduce-only grant, the risk layer's
reduce-only and exposure checks) read it instead of making requests of their own. The
runner refreshes it at every reconcile and records each order it places or cancels in
between; a command without a runner calls ``refresh`` itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient


@dataclass
class OpenOrder:
    client_order_id: str | None
    order_id: str | None
    symbol: str
    side: str  # "buy" | "sell"
    type: str
    amount: float
    remaining: float
    price: float | None
    reduce_only: bool
    post_only: bool = False

    @classmethod
    def from_ccxt(cls, o: dict[str, Any]) -> OpenOrder:
        amount = float(o.get("amount") or 0.0)
        remaining = o.get("remaining")
        return cls(
            client_order_id=o.get("clientOrderId"),
            order_id=str(o.get("id")) if o.get("id") is not None else None,
            symbol=str(o.get("symbol")),
            side=str(o.get("side")),
            type=str(o.get("type")),
            amount=amount,
            remaining=float(remaining) if remaining is not None else amount,
            price=float(o["price"]) if o.get("price") else None,
            reduce_only=bool(o.get("reduceOnly")),
            post_only=bool(o.get("postOnly")),
        )


@dataclass
class AccountView:
    positions: dict[str, float] = field(default_factory=dict)  # symbol -> signed amount
    entry_prices: dict[str, float] = field(default_factory=dict)
    orders: dict[str, OpenOrder] = field(default_factory=dict)  # key: client id or order id
    leverage: dict[str, float] = field(default_factory=dict)
    equity: float | None = None
    updated_at: float = 0.0

    def position(self, symbol: str) -> float:
        return self.positions.get(symbol, 0.0)

    def open_orders(self, symbol: str | None = None) -> list[OpenOrder]:
        return [o for o in self.orders.values() if symbol is None or o.symbol == symbol]

    @staticmethod
    def _key(o: OpenOrder) -> str:
        return o.client_order_id or o.order_id or f"anon-{id(o)}"

    def set_orders(self, symbol: str, orders: list[dict[str, Any]]) -> None:
        """Replace the open orders of ``symbol`` with the exchange's list."""
        self.orders = {k: v for k, v in self.orders.items() if v.symbol != symbol}
        for raw in orders:
            o = OpenOrder.from_ccxt(raw)
            self.orders[self._key(o)] = o

    def order_placed(self, order: dict[str, Any]) -> None:
        o = OpenOrder.from_ccxt(order)
        if order.get("status") in (None, "open"):
            self.orders[self._key(o)] = o

    def order_gone(self, client_order_id: str | None, order_id: str | None = None) -> None:
        for key in [
            k
            for k, v in self.orders.items()
            if (client_order_id and v.client_order_id == client_order_id)
            or (order_id and v.order_id == order_id)
        ]:
            del self.orders[key]

    def symbol_cleared(self, symbol: str) -> None:
        self.orders = {k: v for k, v in self.orders.items() if v.symbol != symbol}

    def set_positions(self, positions: list[dict[str, Any]]) -> None:
        self.positions.clear()
        self.entry_prices.clear()
        for p in positions:
            info = p.get("info") or {}
            amount = info.get("positionAmt")
            if amount is None:
                contracts = float(p.get("contracts") or 0.0)
                amount = -contracts if p.get("side") == "short" else contracts
            if float(amount):
                self.positions[str(p.get("symbol"))] = float(amount)
                if p.get("entryPrice"):
                    self.entry_prices[str(p.get("symbol"))] = float(p["entryPrice"])
        self.updated_at = time.time()

    async def refresh(self, client: GuardedClient, symbols: list[str]) -> None:
        """Fetch positions and open orders (for commands that run without a runner)."""
        self.set_positions(await client.fetch_positions(symbols or None))
        for s in symbols:
            self.set_orders(s, await client.fetch_open_orders(s))
