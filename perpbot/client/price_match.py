"""priceMatch: a LIMIT order whose price the exchange sets from its book at entry.

Binance (New Order, ``priceMatch``): OPPONENT / OPPONENT_5 / OPPONENT_10 / OPPONENT_20 take
the 1st / 5th / 10th / 20th price level of the *opposite* side of the book (a buy: the asks),
QUEUE / QUEUE_5 / QUEUE_10 / QUEUE_20 that level of the order's *own* side (a buy: the
bids); LIMIT only (-5038), never with a price (-1106); no such level: -5041.

The scope and risk gates must value such an order before it leaves, at the price the book
will give it. ``valuation`` says which price that is (docs/risk.md "priceMatch orders"):

- the matched level of the book the engine read just before sending (``OrderSpec.match_price``,
  read by ``ctx`` from the stream's local book, else a REST depth read through the pipeline),
  if that read is at most ``MATCH_MAX_AGE_S`` old;
- otherwise (no book, a stale one, a book without that level, a raw request that carries no
  reading) the PERCENT_PRICE band edge, mark x multiplierUp: Binance refuses any LIMIT price
  above it (-4016), so no priceMatch order can be given a higher one;
- and when neither is known, None: the gates refuse (they cannot bound the notional).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Binance's enum, NONE aside (NONE means "no price match": send a price instead)
PRICE_MATCHES: dict[str, tuple[str, int]] = {
    "OPPONENT": ("opposite", 1),
    "OPPONENT_5": ("opposite", 5),
    "OPPONENT_10": ("opposite", 10),
    "OPPONENT_20": ("opposite", 20),
    "QUEUE": ("own", 1),
    "QUEUE_5": ("own", 5),
    "QUEUE_10": ("own", 10),
    "QUEUE_20": ("own", 20),
}
BOOK_DEPTH = 20  # levels read to value any of them (a REST depth limit Binance accepts)
MATCH_MAX_AGE_S = 5.0  # a book reading older than this is not trusted to value the order
BOOK_LEVEL = "the book's matched level"


def matched_price(
    side: str, match: str, bids: Sequence[Sequence[Any]], asks: Sequence[Sequence[Any]]
) -> float | None:
    """The price ``match`` gives a ``side`` order on this book (best first), or None when
    the book has no such level (Binance: -5041)."""
    which, depth = PRICE_MATCHES[match]
    own, opposite = (bids, asks) if side.lower() == "buy" else (asks, bids)
    levels = opposite if which == "opposite" else own
    if len(levels) < depth:
        return None
    price = float(levels[depth - 1][0])
    return price if price > 0 else None


def band_up(market: Mapping[str, Any] | None) -> float | None:
    """PERCENT_PRICE's multiplierUp from the loaded market (None: not served)."""
    info = market.get("info") if market is not None else None
    filters = info.get("filters") if isinstance(info, Mapping) else None
    for f in filters if isinstance(filters, list) else []:
        if isinstance(f, Mapping) and f.get("filterType") == "PERCENT_PRICE":
            try:
                up = float(f.get("multiplierUp") or 0.0)
            except (TypeError, ValueError):
                return None
            return up if up > 1.0 else None
    return None


def valuation(
    match_price: float | None,
    match_at: float | None,
    market: Mapping[str, Any] | None,
    marks: Sequence[float],
    now: float,
) -> tuple[float | None, str]:
    """(price, how it was found) to value a priceMatch order at; price None: unknown."""
    if match_price and match_at is not None and 0 <= now - match_at <= MATCH_MAX_AGE_S:
        return float(match_price), BOOK_LEVEL
    up, mark = band_up(market), max(marks, default=None)
    if up is not None and mark:
        why = "no book reading, or no such level" if not match_price else "a stale book"
        return mark * up, f"the PERCENT_PRICE band edge, mark x {up:g} ({why})"
    return None, "no fresh book and no mark price with a PERCENT_PRICE band"
