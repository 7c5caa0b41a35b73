"""Cancelling open orders for the kill switch, verified against the exchange.

One ``cancel_all_orders`` per symbol when the switch covers the whole account (scope all or
profile): one request per symbol is the fastest way to empty a book. For a switch scoped to
one run, only that run's orders are cancelled, one request each, all at once. Either way
the open orders are then fetched again and anything left (an order that was in flight when
the switch tripped) is cancelled, up to ``rounds`` times.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from perpbot.errors import describe_error
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


def _key(rec: dict[str, Any]) -> str:
    return str(rec["client_order_id"] or rec["order_id"] or repr(rec))


PAUSE_S = 0.1
# Cancels that fail (5xx, timeouts, a rate-limit wait cut short) are tried again until this
# long after the first; then what is left is reported, by symbol and order id.
CANCEL_DEADLINE_S = 10.0


@dataclass(slots=True)
class CancelReport:
    cancelled: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    # Orders still open when the deadline passed, per symbol (as last seen: fetched from
    # the exchange, or, where no fetch answered, the orders known before cancelling).
    left: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    unconfirmed: list[str] = field(default_factory=list)  # symbols no fetch answered for

    def left_records(self) -> list[dict[str, Any]]:
        return [o for symbol in sorted(self.left) for o in self.left[symbol]]


async def cancel_open_orders(
    ops: ExchangeOps,
    symbols: list[str],
    known: dict[str, list[dict[str, Any]]],
    *,
    only: Callable[[dict[str, Any]], bool] | None = None,
    deadline_s: float = CANCEL_DEADLINE_S,
) -> CancelReport:
    """Cancel open orders on ``symbols``: all of them, or with ``only`` those it accepts.

    ``known`` are the open orders the caller already knows of (ccxt-shaped dicts); they are
    cancelled without being fetched first, so the cancel requests leave at once. Then the
    open orders are fetched and whatever is left is cancelled, until none is left or
    ``deadline_s`` has passed; a failed request (a rate-limit wait the switch cut short, a
    timeout, a 5xx) is tried again after a short pause. Problems are reported only for a
    symbol that could not be emptied; ``left`` names the orders still open on it (as the
    last check saw them) and ``unconfirmed`` the symbols whose last check got no answer.
    """
    report = CancelReport()
    seen: set[str] = set()
    deadline = time.monotonic() + deadline_s

    def record(order: dict[str, Any], symbol: str) -> None:
        rec = order_record(order, symbol)
        key = _key(rec)
        if key not in seen:
            seen.add(key)
            report.cancelled.append(rec)

    async def cancel_each(orders: list[dict[str, Any]], symbol: str, problems: list[str]) -> None:
        results = await asyncio.gather(
            *(ops.cancel_one(o, symbol) for o in orders), return_exceptions=True
        )
        for order, result in zip(orders, results, strict=True):
            if isinstance(result, BaseException):
                cid = order.get("clientOrderId") or order.get("id")
                problems.append(f"cancel {symbol} {cid}: {describe_error(result)}")
            else:
                record(order, symbol)

    async def one_symbol(symbol: str) -> None:
        problems: list[str] = []
        mine = [o for o in known.get(symbol, []) if only is None or only(o)]
        if only is None:
            try:
                await ops.cancel_all(symbol)
            except Exception as exc:
                problems.append(f"cancel all {symbol}: {describe_error(exc)}")
            else:
                for o in mine:
                    record(o, symbol)
        elif mine:
            await cancel_each(mine, symbol, problems)
        pause = PAUSE_S
        last_seen, confirmed = mine, False
        while True:
            try:
                fetched = await ops.client.fetch_open_orders(symbol)
            except Exception as exc:
                problems.append(f"checking open orders on {symbol}: {describe_error(exc)}")
                confirmed = False
            else:
                left = [o for o in fetched if only is None or only(o)]
                last_seen, confirmed = left, True
                if not left:
                    return
                await cancel_each(left, symbol, problems)
                problems.append(f"{symbol}: {len(left)} order(s) were still open")
            if time.monotonic() + pause > deadline:
                report.errors.extend(problems[-3:])
                gone = {_key(r) for r in report.cancelled}
                records = (order_record(o, symbol) for o in last_seen)
                still = [r for r in records if _key(r) not in gone]
                if still:
                    report.left[symbol] = still
                if not confirmed:
                    report.unconfirmed.append(symbol)
                return
            await asyncio.sleep(pause)
            pause = min(pause * 2.0, 1.0)

    await asyncio.gather(*(one_symbol(s) for s in symbols))
    return report
