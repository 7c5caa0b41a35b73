"""Sentences about what a kill left behind: open orders, positions, the exchange's countdown.

Shared by the bots' acknowledgements, `perpbot kill` and `kill --direct`. Standard library
only: it is on the `perpbot kill` path.
"""

from __future__ import annotations

import time
from typing import Any


def describe_left(left: list[dict[str, Any]], unconfirmed: list[str] | None = None) -> str:
    """'3 order(s) left open: BTC/USDT:USDT pb-x-1, pb-x-2; ETH/USDT:USDT 991' (or '')."""
    by_symbol: dict[str, list[str]] = {}
    for o in left:
        ident = o.get("client_order_id") or o.get("order_id") or "?"
        by_symbol.setdefault(str(o.get("symbol")), []).append(str(ident))
    parts = [f"{symbol} {', '.join(ids)}" for symbol, ids in sorted(by_symbol.items())]
    text = f"{len(left)} order(s) left open: {'; '.join(parts)}" if left else ""
    if unconfirmed:
        text += ("; " if text else "") + (
            f"could not confirm what is open on {', '.join(sorted(unconfirmed))} "
            "(the exchange did not answer)"
        )
    return text


def describe_positions_left(left: dict[str, Any]) -> str:
    """'positions left open: BTC/USDT:USDT +0.01, ETH/USDT:USDT unknown' (or '')."""
    if not left:
        return ""
    parts = [
        f"{symbol} {'unknown' if amount is None else format(amount, '+g')}"
        for symbol, amount in sorted(left.items())
    ]
    return f"positions left open: {', '.join(parts)}"


def describe_countdown(cover: dict[str, Any]) -> str:
    """What the exchange's dead-man countdown does about what a kill left open."""
    parts = []
    if cover.get("armed"):
        when = cover.get("fires_by")
        at = time.strftime("%H:%M:%S UTC", time.gmtime(float(when))) if when is not None else "?"
        countdown = float(cover.get("countdown_s") or 0)
        parts.append(
            f"the exchange's dead-man countdown on {', '.join(cover['armed'])} cancels the "
            f"orders left there by {at} at the latest ({countdown:g} s after its "
            "last refresh; the bot stopped refreshing it when it saw the switch)"
        )
    if cover.get("uncovered"):
        parts.append(
            f"no dead-man countdown of this bot covers {', '.join(cover['uncovered'])}: "
            "what is left there stays until cancelled (`perpbot kill --direct`, or by hand)"
        )
    return "; ".join(parts)
