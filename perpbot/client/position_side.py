"""Hedge mode (Binance ``dualSidePosition``): which position an order acts on.

A one-way account holds one net position per symbol (``positionSide`` BOTH, or not sent).
A hedge-mode account holds a LONG and a SHORT position per symbol, side by side, and every
order names the one it acts on: a BUY LONG opens (grows) the long, a SELL LONG closes it, a
SELL SHORT opens the short, a BUY SHORT closes it. ``reduceOnly`` is not sent in hedge mode
(Binance answers -1106): a closing order is one whose side is opposite to its position
side, and Binance itself refuses one that would close more than the position holds.

Binance, New Order (TRADE): "positionSide: Default BOTH for One-way Mode; LONG or SHORT for
Hedge Mode. It must be sent in Hedge Mode."; "reduceOnly: ... cannot be sent in Hedge Mode".
"""

from __future__ import annotations

HEDGE_SIDES = ("LONG", "SHORT")
ONE_WAY = "BOTH"


def closes(side: str, position_side: str | None) -> bool:
    """Whether an order on ``side`` with ``position_side`` closes a hedge-mode position
    (a SELL of the LONG side, a BUY of the SHORT side)."""
    ps = (position_side or "").upper()
    return (ps == "LONG" and side == "sell") or (ps == "SHORT" and side == "buy")


def closing_side(position_side: str) -> str:
    """The order side that closes ``position_side`` (sell for LONG, buy for SHORT)."""
    return "sell" if position_side.upper() == "LONG" else "buy"


def leg(position_side: str | None) -> str | None:
    """LONG or SHORT for a hedge-mode position side; None for one-way (BOTH, not sent)."""
    ps = (position_side or "").upper()
    return ps if ps in HEDGE_SIDES else None


def leg_symbol(key: str) -> str:
    """The symbol of a ``leg_key`` (the key itself on a one-way account)."""
    return key.split("|", 1)[0]


def leg_key(symbol: str, position_side: str | None) -> str:
    """The key a position's accounting goes by: the symbol (one-way), or the symbol and its
    side (``"BTC/USDT:USDT|LONG"``, hedge mode)."""
    side = leg(position_side)
    return symbol if side is None else f"{symbol}|{side}"
