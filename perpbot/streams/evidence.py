"""Evidence that the user data stream owes an event: a silent stall of an event-driven stream.

The user data stream has no cadence (it speaks only when the account changes), so silence
alone proves nothing, and Binance offers no request the user-data connection echoes (its
pings are answered by the connection's gateway, not by the event pipeline; the listenKey
keepalive is a REST call). What the run does have is a second, independent witness: the
market stream's local order book. A resting limit order sits in that book at its price, so
once the book (newer than what the run knows of the order) shows

    a buy at P:  no bid at P or above (best bid < P), or an ask at or below P (crossed)
    a sell at P: no ask at P or below (best ask > P), or a bid at or above P (crossed)

the order no longer rests: it filled, or it was cancelled or expired. Every one of those is
an ORDER_TRADE_UPDATE the user stream owes. If the order is still open in the run's view
``OWED_GRACE_S`` after the book first showed it gone (the update normally arrives before the
book's next 100 ms diff does), the user stream is taken as stalled: the feed reconnects it
and a REST reconcile backfills what it held back (perpbot.streams.feed, STREAM_USER_SILENT).

Each order serves as evidence once: if REST then says it is still open, the book was wrong
about it (a desynced book, an order beyond the book's depth), not the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perpbot.client.account import OpenOrder

OWED_GRACE_S = 1.0  # the user stream's cadence once the book says it owes an event
_TICK = 1e-9  # relative tolerance on price comparisons


@dataclass(slots=True, frozen=True)
class Owed:
    """An order the book shows gone while the run still holds it open."""

    key: str
    order: OpenOrder
    owed_s: float  # how long the book has shown it gone
    best_bid: float | None
    best_ask: float | None


def _best(levels: list[list[float]]) -> float | None:
    return float(levels[0][0]) if levels else None


def not_resting(order: OpenOrder, book: dict[str, Any]) -> bool:
    """Whether ``book`` shows that ``order`` (a limit order at its price) is not resting."""
    price = order.price
    if price is None:
        return False
    bid, ask = _best(book.get("bids") or []), _best(book.get("asks") or [])
    eps = abs(price) * _TICK
    if order.side == "buy":
        return (bid is not None and bid < price - eps) or (ask is not None and ask <= price + eps)
    return (ask is not None and ask > price + eps) or (bid is not None and bid >= price - eps)


class OwedEvents:
    """Tracks, across watchdog rounds, how long each open order has been shown gone."""

    def __init__(self, grace_s: float = OWED_GRACE_S) -> None:
        self.grace_s = grace_s
        self.since: dict[str, float] = {}  # order key -> when the book first showed it gone
        self.used: set[str] = set()  # orders that already served as evidence

    def check(
        self,
        orders: dict[str, OpenOrder],
        books: dict[str, dict[str, Any]],
        book_seen: dict[str, float],
        now: float,
    ) -> list[Owed]:
        """The orders owed an event for ``grace_s`` or longer (``now`` monotonic;
        ``book_seen[symbol]`` the ``time.time()`` at which the book last changed, compared
        with each order's ``seen_at``)."""
        self.used &= set(orders)
        gone: dict[str, OpenOrder] = {}
        for key, o in orders.items():
            if key in self.used or o.inflight or o.type.lower() != "limit":
                continue
            book = books.get(o.symbol)
            # judged only on a book that changed after the run learnt of the order
            if book is None or book_seen.get(o.symbol, 0.0) <= o.seen_at:
                continue
            if not_resting(o, book):
                gone[key] = o
        self.since = {k: self.since.get(k, now) for k in gone}
        due = []
        for key, o in gone.items():
            owed = now - self.since[key]
            if owed >= self.grace_s:
                book = books[o.symbol]
                due.append(
                    Owed(key, o, owed, _best(book.get("bids") or []), _best(book.get("asks") or []))
                )
        for d in due:
            self.used.add(d.key)
            self.since.pop(d.key, None)
        return due
