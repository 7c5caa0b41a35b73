"""Resting reduce-only orders that hold a position an exit has to close.

Binance counts the open reduce-only orders on a position's closing side against the
position: with a full-size reduce-only take-profit resting, every other reduce-only order
is refused (-4118 "ReduceOnly Order Failed. Please check your existing position and open
orders.", xLydianSoftware/Qubx#386), and a run's own risk gate refuses it first
(``RISK_REDUCE_ONLY_EXCEEDS``: the room is the position less the reduce-only orders
resting). An exit that wants the position closed now cancels those orders: they could
only have closed the same position (at a better price, later), and once it is flat the
exchange expires them anyway. Conditional (algo) orders are not in the book and do not
hold anything; the kill switch's flatten cancels them once a symbol is flat.

Who may cancel what: a run's ``ctx.exit`` cancels the run's own reduce-only orders; the
kill switch's flatten and ``perpbot flatten`` cancel any reduce-only order of the account
on that symbol's closing side (they act for the account's owner).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

# -4118 from the exchange, or a gate's refusal for the room reduce-only orders take
_HELD = re.compile(r"-4118|REDUCE_ONLY_MARGIN|RISK_REDUCE_ONLY_EXCEEDS|SCOPE_REDUCE_EXCEEDS")

ListOpen = Callable[[str], Awaitable[list[dict[str, Any]]]]
CancelOne = Callable[[dict[str, Any], str], Awaitable[Any]]
FreeReduceOnly = Callable[[str, str], Awaitable[list[dict[str, Any]]]]


def is_held_refusal(exc: BaseException) -> bool:
    """Was a reduce-only order refused for the room other reduce-only orders hold?"""
    code = getattr(exc, "code", None)
    return bool(_HELD.search(f"{code or ''} {exc}"))


def reduce_only_freer(list_open: ListOpen, cancel: CancelOne) -> FreeReduceOnly:
    """``free(symbol, side)``: cancel the reduce-only orders ``list_open(symbol)`` lists on
    ``side`` (the exit's side: they close the same position); the orders cancelled."""

    async def free(symbol: str, side: str) -> list[dict[str, Any]]:
        held = [
            o
            for o in await list_open(symbol)
            if o.get("reduceOnly") and o.get("side") == side and o.get("symbol") == symbol
        ]
        for order in held:
            await cancel(order, symbol)
        return held

    return free


def describe_held(orders: list[dict[str, Any]]) -> str:
    """``sell 0.01 @ 61000 (pb-…-3), …``: enough to find each order in the exchange's UI."""
    parts = []
    for o in orders:
        price = o.get("price")
        at = f" @ {price:g}" if isinstance(price, int | float) and price else ""
        left = o.get("remaining") if o.get("remaining") is not None else o.get("amount")
        size = f" {left:g}" if isinstance(left, int | float) else ""
        parts.append(f"{o.get('side')}{size}{at} ({o.get('clientOrderId') or o.get('id')})")
    return ", ".join(parts)


def freed_sentence(symbol: str, orders: list[dict[str, Any]]) -> str:
    return (
        f"cancelled {len(orders)} resting reduce-only order(s) on {symbol} that held the "
        f"position ({describe_held(orders)}): no other reduce-only order could close what "
        "they reserve (Binance -4118); the exit goes on"
    )


def blocked_sentence(symbol: str, refusal: str, who: str) -> str:
    return (
        f"reduce-only orders on {symbol} are refused ({refusal}): resting reduce-only orders "
        f"{who} hold the position; cancel them (`perpbot flatten --cancel-orders --symbol "
        f"{symbol}`, or by hand) and the exit goes on"
    )
