"""Finding, cancelling and modifying existing orders (Binance's lookup and error rules).

Lookups accept ``orderId`` or ``origClientOrderId``: by client id Binance returns the most
recent recorded order carrying it, which is what an idempotent client relies on to learn
the fate of an order whose response was lost.
"""

from __future__ import annotations

from collections.abc import Mapping

from perpbot.sim import errors as E
from perpbot.sim.engine import Engine
from perpbot.sim.models import Account, Order
from perpbot.sim.trading import _would_cross, execute, required, spec_of
from perpbot.sim.ws_events import OrderChanged

BOTH_EMPTY = E.SimError(
    -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
)


def find_order(
    engine: Engine, acct: Account, params: Mapping[str, str], missing: tuple[int, str]
) -> Order:
    """The account's recorded order named by orderId/origClientOrderId in ``symbol``."""
    symbol = spec_of(engine, params)
    raw_id = params.get("orderId")
    cid = params.get("origClientOrderId")
    order: Order | None = None
    if raw_id:
        try:
            order = engine.orders.get(int(raw_id))
        except ValueError:
            raise E.illegal("orderId") from None
    elif cid:
        order = engine.cid_index.get((acct.api_key, cid))
    else:
        raise BOTH_EMPTY
    if (
        order is None
        or not order.recorded
        or order.account != acct.api_key
        or order.symbol != symbol
        or (cid and order.client_order_id != cid)
    ):
        raise E.err(missing)
    return order


def cancel_order(engine: Engine, acct: Account, params: Mapping[str, str]) -> Order:
    order = find_order(engine, acct, params, E.UNKNOWN_ORDER_CANCEL)
    if not order.is_open:
        raise E.err(E.UNKNOWN_ORDER_CANCEL)
    engine.close_order(order, "CANCELED", engine.clock.now_ms())
    return order


def modify_order(engine: Engine, acct: Account, params: Mapping[str, str]) -> Order:
    """PUT /fapi/v1/order: change price and/or quantity of an open LIMIT order.

    A price change loses time priority (the order re-queues); a pure size decrease keeps
    it. A modification that would make a post-only order cross is rejected with -5022 and
    leaves the order untouched; otherwise a crossing modification trades as a taker.
    """
    order = find_order(engine, acct, params, E.ORDER_NOT_EXIST)
    if not order.is_open:
        raise E.SimError(-2013, "Order does not exist.")
    spec = engine.specs[order.symbol]
    qty = spec.parse_qty(required(params, "quantity"))
    price = spec.parse_price(required(params, "price"))
    spec.check_percent_price(price, engine.markets[order.symbol].mark)
    if qty == order.qty and price == order.price:
        raise E.SimError(-5027, "No need to modify the order.")
    if qty <= order.executed:
        raise E.SimError(-4003, "Quantity less than or equal to zero.")
    if not order.reduce_only and spec.px(price) * spec.qty(qty) < spec.min_notional:
        raise E.SimError(
            -4164,
            f"Order's notional must be no smaller than "
            f"{spec.cfg.min_notional} (unless you choose reduce only).",
        )
    crosses = _would_cross(engine, order.symbol, order.side, price, acct.api_key)
    if order.tif == "GTX" and crosses:
        raise E.err(E.POST_ONLY_REJECTED)
    now = engine.clock.now_ms()
    book = engine.books[order.symbol]
    if price != order.price or crosses:
        book.remove(order)
        order.price = price
        order.qty = qty
        engine.seq += 1
        order.seq = engine.seq
        order.update_time = now
        engine.emit(OrderChanged(order, "AMENDMENT", now))
        execute(engine, order, now)
    else:
        order.qty = qty
        order.update_time = now
        engine.emit(OrderChanged(order, "AMENDMENT", now))
    return order


def cancel_all(engine: Engine, acct: Account, params: Mapping[str, str]) -> None:
    symbol = spec_of(engine, params)
    engine.cancel_all(acct.api_key, symbol, engine.clock.now_ms())
