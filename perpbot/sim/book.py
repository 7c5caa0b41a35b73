"""The users' side of a symbol's order book: resting limit orders in price-time priority.

The synthetic crowd is not stored here (it is re-quoted around the mid every market step,
see market.py); matching merges the two, letting users' orders go first at equal prices,
which is price-time priority because the crowd's quotes are always the newest.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator

from perpbot.sim.models import Order


class _Side:
    def __init__(self, descending: bool) -> None:
        self.descending = descending
        self.prices: list[int] = []  # ascending
        self.levels: dict[int, deque[Order]] = {}

    def add(self, order: Order) -> None:
        level = self.levels.get(order.price)
        if level is None:
            level = deque()
            self.levels[order.price] = level
            bisect.insort(self.prices, order.price)
        level.append(order)

    def remove(self, order: Order) -> None:
        level = self.levels.get(order.price)
        if level is None:
            return
        try:
            level.remove(order)
        except ValueError:
            return
        if not level:
            del self.levels[order.price]
            idx = bisect.bisect_left(self.prices, order.price)
            if idx < len(self.prices) and self.prices[idx] == order.price:
                self.prices.pop(idx)

    def best_price(self) -> int | None:
        if not self.prices:
            return None
        return self.prices[-1] if self.descending else self.prices[0]

    def head(self) -> Order | None:
        price = self.best_price()
        return None if price is None else self.levels[price][0]

    def iter_orders(self) -> Iterator[Order]:
        ordered = reversed(self.prices) if self.descending else iter(self.prices)
        for price in list(ordered):
            yield from list(self.levels.get(price, ()))

    def depth(self) -> list[tuple[int, int]]:
        ordered = reversed(self.prices) if self.descending else iter(self.prices)
        return [(p, sum(o.remaining for o in self.levels[p])) for p in ordered]


class Book:
    """Bids (best = highest) and asks (best = lowest) of users' resting orders."""

    def __init__(self) -> None:
        self.bids = _Side(descending=True)
        self.asks = _Side(descending=False)

    def side(self, order_side: str) -> _Side:
        return self.bids if order_side == "BUY" else self.asks

    def opposite(self, order_side: str) -> _Side:
        return self.asks if order_side == "BUY" else self.bids

    def add(self, order: Order) -> None:
        self.side(order.side).add(order)

    def remove(self, order: Order) -> None:
        self.side(order.side).remove(order)

    def best_bid(self) -> int | None:
        return self.bids.best_price()

    def best_ask(self) -> int | None:
        return self.asks.best_price()
