"""Cancelling open orders for the kill switch, verified against the exchange.

One ``cancel_all_orders`` per symbol when the switch covers the whole account (scope all or
profile): one request per symbol is the fastest way to empty a book. For a switch scoped to
one run, only that run's orders are cancelled, one request each, all at once. Either way
the open orders are then fetched again and anything left (an order that was in flight when
the switch tripped) is cancelled, up to ``rounds`` times.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from perpbot.kill.ops import ExchangeOps


def order_record(order: dict[str, Any], symbol: str) -> dict[str, Any]:
    return {
        "symbol": order.get("symbol") or symbol,
        "client_order_id": order.get("clientOrderId"),
        "order_id": str(order["id"]) if order.get("id") is not None else None,
        "side": order.get("side"),
        "price": order.get("price"),
        "amount": order.get("amount"),
    }


_QUERY = re.compile(r"(https?://[^\s?]+)\?\S*")


def describe_error(exc: BaseException) -> str:
    """``Class: first line`` of an error, with URL query strings (signatures) cut off."""
    text = _QUERY.sub(r"\1?...", str(exc).split("\n")[0])[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class CancelReport:
    cancelled: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


async def cancel_open_orders(
    ops: ExchangeOps,
    symbols: list[str],
    known: dict[str, list[dict[str, Any]]],
    *,
    only: Callable[[dict[str, Any]], bool] | None = None,
    rounds: int = 3,
) -> CancelReport:
    """Cancel open orders on ``symbols``: all of them, or with ``only`` those it accepts.

    ``known`` are the open orders the caller already knows of (ccxt-shaped dicts); they are
    cancelled without being fetched first, so the cancel requests leave at once.
    """
    report = CancelReport()
    seen: set[str] = set()

    def record(order: dict[str, Any], symbol: str) -> None:
        rec = order_record(order, symbol)
        key = rec["client_order_id"] or rec["order_id"] or repr(rec)
        if key not in seen:
            seen.add(key)
            report.cancelled.append(rec)

    async def cancel_each(orders: list[dict[str, Any]], symbol: str) -> None:
        results = await asyncio.gather(
            *(ops.cancel_one(o, symbol) for o in orders), return_exceptions=True
        )
        for order, result in zip(orders, results, strict=True):
            if isinstance(result, BaseException):
                report.errors.append(f"cancel {symbol} {order.get('clientOrderId')}: {describe_error(result)}")
            else:
                record(order, symbol)

    async def one_symbol(symbol: str) -> None:
        mine = [o for o in known.get(symbol, []) if only is None or only(o)]
        if only is None:
            try:
                await ops.cancel_all(symbol)
            except Exception as exc:
                report.errors.append(f"cancel all {symbol}: {describe_error(exc)}")
            else:
                for o in mine:
                    record(o, symbol)
        elif mine:
            await cancel_each(mine, symbol)
        for attempt in range(rounds + 1):
            try:
                fetched = await ops.client.fetch_open_orders(symbol)
            except Exception as exc:
                report.errors.append(f"checking open orders on {symbol}: {describe_error(exc)}")
                return
            left = [o for o in fetched if only is None or only(o)]
            if not left:
                return
            if attempt == rounds:
                report.errors.append(
                    f"{symbol}: {len(left)} order(s) still open after {rounds} rounds of cancels"
                )
                return
            await cancel_each(left, symbol)

    await asyncio.gather(*(one_symbol(s) for s in symbols))
    return report
