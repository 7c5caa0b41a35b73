"""Signed trading endpoints: orders (single and batch), cancels, open orders, fills, DMS."""

from __future__ import annotations

import json
from typing import Any

from perpbot.sim import amend, payloads, trading
from perpbot.sim import errors as E
from perpbot.sim.engine import Engine
from perpbot.sim.routing import Ctx, Route, int_param, window

FUTURES = "enableFutures"
MAX_BATCH_PLACE = 5
MAX_BATCH_CANCEL = 10


def new_order(engine: Engine, ctx: Ctx) -> Any:
    order = trading.place_order(engine, ctx.acct, ctx.params)
    ack = ctx.params.get("newOrderRespType", "ACK").upper() == "ACK"
    return payloads.order(engine, order, cum_qty=True, ack=ack)


def test_order(engine: Engine, ctx: Ctx) -> Any:
    """POST /fapi/v1/order/test: the new order's checks, nothing placed; ``{}`` if it passes."""
    trading.validate_order(engine, ctx.acct, ctx.params)
    return {}


def modify_order(engine: Engine, ctx: Ctx) -> Any:
    return payloads.order(engine, amend.modify_order(engine, ctx.acct, ctx.params), cum_qty=True)


def get_order(engine: Engine, ctx: Ctx) -> Any:
    order = amend.find_order(engine, ctx.acct, ctx.params, E.ORDER_NOT_EXIST)
    return payloads.order(engine, order, with_time=True)


def cancel_order(engine: Engine, ctx: Ctx) -> Any:
    return payloads.order(engine, amend.cancel_order(engine, ctx.acct, ctx.params), cum_qty=True)


def cancel_all(engine: Engine, ctx: Ctx) -> Any:
    amend.cancel_all(engine, ctx.acct, ctx.params)
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def open_orders(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params) if ctx.params.get("symbol") else None
    orders = sorted(engine.open_of(ctx.acct.api_key, symbol), key=lambda o: o.order_id)
    return [payloads.order(engine, o, with_time=True) for o in orders]


def open_order(engine: Engine, ctx: Ctx) -> Any:
    order = amend.find_order(engine, ctx.acct, ctx.params, E.ORDER_NOT_EXIST)
    if not order.is_open:
        raise E.SimError(-2013, "Order does not exist.")
    return payloads.order(engine, order, with_time=True)


def user_trades(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params)
    order_id = int_param(ctx.params, "orderId")
    from_id = int_param(ctx.params, "fromId")
    trades = [
        t
        for t in engine.trades_by_account.get(ctx.acct.api_key, [])
        if t.symbol == symbol
        and (order_id is None or t.order_id == order_id)
        and (from_id is None or t.trade_id >= from_id)
    ]
    if from_id is not None:
        limit = int_param(ctx.params, "limit", 500, 1, 1000) or 500
        trades = trades[:limit]
    else:
        trades = window(trades, lambda t: t.time, ctx.params, 500, 1000)
    return [payloads.trade(engine, t) for t in trades]


def countdown_cancel_all(engine: Engine, ctx: Ctx) -> Any:
    """Arm (or with 0 disarm) the dead-man switch for one symbol of this account."""
    symbol = trading.spec_of(engine, ctx.params)
    raw = ctx.params.get("countdownTime")
    if raw is None or raw == "":
        raise E.mandatory("countdownTime")
    countdown = int_param(ctx.params, "countdownTime", 0, 0) or 0
    key = (ctx.acct.api_key, symbol)
    now = engine.clock.now_ms()
    if countdown == 0:
        engine.countdowns.pop(key, None)
    else:
        engine.countdowns[key] = now + countdown
    engine.note_countdown(ctx.acct.api_key, symbol, now, "set" if countdown else "disarmed")
    return {"symbol": symbol, "countdownTime": str(countdown)}


def _batch(ctx: Ctx, limit: int) -> list[dict[str, str]]:
    raw = ctx.params.get("batchOrders")
    if not raw:
        raise E.mandatory("batchOrders")
    try:
        items = json.loads(raw)
    except ValueError:
        raise E.SimError(-1130, "Data sent for parameter 'batchOrders' is not valid.") from None
    if not isinstance(items, list) or not items or not all(isinstance(i, dict) for i in items):
        raise E.SimError(-1130, "Data sent for parameter 'batchOrders' is not valid.")
    if len(items) > limit:
        raise E.SimError(-1130, "Data sent for parameter 'batchOrders' is not valid.")
    return [{k: _as_param(v) for k, v in item.items()} for item in items]


def _as_param(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def batch_place(engine: Engine, ctx: Ctx) -> Any:
    out: list[Any] = []
    for params in _batch(ctx, MAX_BATCH_PLACE):
        try:
            order = trading.place_order(engine, ctx.acct, params)
        except E.SimError as exc:
            out.append({"code": exc.code, "msg": exc.msg})
            continue
        out.append(payloads.order(engine, order, cum_qty=True))
    return out


def batch_modify(engine: Engine, ctx: Ctx) -> Any:
    out: list[Any] = []
    for params in _batch(ctx, MAX_BATCH_PLACE):
        try:
            order = amend.modify_order(engine, ctx.acct, params)
        except E.SimError as exc:
            out.append({"code": exc.code, "msg": exc.msg})
            continue
        out.append(payloads.order(engine, order, cum_qty=True))
    return out


def _id_list(ctx: Ctx, name: str) -> list[Any] | None:
    for key, value in ctx.params.items():
        if key.lower() == name.lower() and value:
            try:
                parsed = json.loads(value)
            except ValueError:
                raise E.SimError(-1130, f"Data sent for parameter '{name}' is not valid.") from None
            if not isinstance(parsed, list):
                raise E.SimError(-1130, f"Data sent for parameter '{name}' is not valid.")
            return parsed
    return None


def batch_cancel(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params)
    ids = _id_list(ctx, "orderIdList")
    cids = _id_list(ctx, "origClientOrderIdList")
    selectors = (
        [{"orderId": str(i)} for i in ids]
        if ids
        else [{"origClientOrderId": str(c)} for c in cids or []]
    )
    if not selectors:
        raise amend.BOTH_EMPTY
    if len(selectors) > MAX_BATCH_CANCEL:
        raise E.SimError(-1130, "Data sent for parameter 'orderIdList' is not valid.")
    out: list[Any] = []
    for sel in selectors:
        try:
            order = amend.cancel_order(engine, ctx.acct, {"symbol": symbol, **sel})
        except E.SimError as exc:
            out.append({"code": exc.code, "msg": exc.msg})
            continue
        out.append(payloads.order(engine, order, cum_qty=True))
    return out


ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/fapi/v1/order"): Route(new_order, FUTURES),
    ("POST", "/fapi/v1/order/test"): Route(test_order, FUTURES),
    ("PUT", "/fapi/v1/order"): Route(modify_order, FUTURES),
    ("GET", "/fapi/v1/order"): Route(get_order, FUTURES),
    ("DELETE", "/fapi/v1/order"): Route(cancel_order, FUTURES),
    ("DELETE", "/fapi/v1/allOpenOrders"): Route(cancel_all, FUTURES),
    ("GET", "/fapi/v1/openOrders"): Route(open_orders, FUTURES),
    ("GET", "/fapi/v1/openOrder"): Route(open_order, FUTURES),
    ("GET", "/fapi/v1/userTrades"): Route(user_trades, FUTURES),
    ("POST", "/fapi/v1/countdownCancelAll"): Route(countdown_cancel_all, FUTURES),
    ("POST", "/fapi/v1/batchOrders"): Route(batch_place, FUTURES),
    ("PUT", "/fapi/v1/batchOrders"): Route(batch_modify, FUTURES),
    ("DELETE", "/fapi/v1/batchOrders"): Route(batch_cancel, FUTURES),
}
