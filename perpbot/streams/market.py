"""The latest market data the streams brought: a synced order book and the mark/funding.

Written on the engine's event loop, read by the strategy's thread (``ctx.order_book``,
``ctx.mid``, ``ctx.funding``, ``ctx.mark``): each entry is replaced whole, never mutated,
so a reader always sees one consistent snapshot. An entry older than ``max_age_s`` by the
exchange's own timestamp is not served: the context then asks REST, like before streams.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

BOOK_DEPTH = 50  # levels kept per side (the snapshot ccxt.pro syncs from is 50 deep)


@dataclass(slots=True, kw_only=True)
class MarketCache:
    max_age_s: float
    books: dict[str, dict[str, Any]] = field(default_factory=dict)
    funding: dict[str, dict[str, Any]] = field(default_factory=dict)

    def set_book(self, symbol: str, ob: Any) -> None:
        self.books[symbol] = {
            "symbol": symbol,
            "bids": [[float(p), float(a)] for p, a, *_ in ob["bids"][:BOOK_DEPTH]],
            "asks": [[float(p), float(a)] for p, a, *_ in ob["asks"][:BOOK_DEPTH]],
            "timestamp": ob.get("timestamp") or int(time.time() * 1000),
            "datetime": ob.get("datetime"),
            "nonce": ob.get("nonce"),
        }

    def set_mark(self, symbol: str, ticker: dict[str, Any]) -> None:
        info = ticker.get("info") or {}
        self.funding[symbol] = {
            "symbol": symbol,
            "markPrice": ticker.get("markPrice"),
            "indexPrice": ticker.get("indexPrice"),
            "fundingRate": float(info["r"]) if info.get("r") not in (None, "") else None,
            "nextFundingTimestamp": int(info["T"]) if info.get("T") else None,
            "timestamp": ticker.get("timestamp"),
            "datetime": ticker.get("datetime"),
            "info": info,
        }

    def _fresh(self, entry: dict[str, Any] | None) -> dict[str, Any] | None:
        if entry is None or not entry.get("timestamp"):
            return None
        if time.time() - entry["timestamp"] / 1000.0 > self.max_age_s:
            return None
        return entry

    def order_book(self, symbol: str, limit: int | None) -> dict[str, Any] | None:
        """The book (``limit`` levels a side), or None when there is none fresh enough."""
        book = self._fresh(self.books.get(symbol))
        if book is None or (limit is not None and limit > BOOK_DEPTH):
            return None
        if not book["bids"] or not book["asks"]:
            return None
        n = limit or BOOK_DEPTH
        return {**book, "bids": book["bids"][:n], "asks": book["asks"][:n]}

    def mark_funding(self, symbol: str) -> dict[str, Any] | None:
        entry = self._fresh(self.funding.get(symbol))
        return dict(entry) if entry is not None and entry.get("markPrice") else None
