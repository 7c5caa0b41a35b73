"""Signed Algo Order API endpoints (Binance USD-M, since Dec 2025): conditional orders.

``POST /fapi/v1/algoOrder``, ``GET /fapi/v1/algoOrder``, ``DELETE /fapi/v1/algoOrder``,
``GET /fapi/v1/openAlgoOrders``, ``DELETE /fapi/v1/algoOpenOrders`` and
``GET /fapi/v1/allAlgoOrders``; the logic (validation, triggers) lives in algo.py.
"""

from __future__ import annotations

from typing import Any

from perpbot.sim import algo, payloads, trading
from perpbot.sim.engine import Engine
from perpbot.sim.routing import Ctx, Route, window

FUTURES = "enableFutures"


def new_algo_order(engine: Engine, ctx: Ctx) -> Any:
    return payloads.algo_order(engine, algo.place(engine, ctx.acct, ctx.params))


def get_algo_order(engine: Engine, ctx: Ctx) -> Any:
    return payloads.algo_order(engine, algo.find(engine, ctx.acct, ctx.params), query=True)


def cancel_algo_order(engine: Engine, ctx: Ctx) -> Any:
    a = algo.cancel(engine, ctx.acct, ctx.params)
    return {"algoId": a.algo_id, "clientAlgoId": a.client_algo_id, "code": "200", "msg": "success"}


def open_algo_orders(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params) if ctx.params.get("symbol") else None
    mine = [
        a
        for a in engine.algo_orders.values()
        if a.account == ctx.acct.api_key and a.is_open and (symbol is None or a.symbol == symbol)
    ]
    return [payloads.algo_order(engine, a, query=True) for a in mine]


def cancel_all_algo(engine: Engine, ctx: Ctx) -> Any:
    algo.cancel_all(engine, ctx.acct, trading.spec_of(engine, ctx.params))
    return {"code": 200, "msg": "The operation of cancel all open order is done."}


def all_algo_orders(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params)
    mine = [
        a
        for a in engine.algo_orders.values()
        if a.account == ctx.acct.api_key and a.symbol == symbol
    ]
    chosen = window(mine, lambda a: a.create_time, ctx.params, 500, 1000)
    return [payloads.algo_order(engine, a, query=True) for a in chosen]


ROUTES: dict[tuple[str, str], Route] = {
    ("POST", "/fapi/v1/algoOrder"): Route(new_algo_order, FUTURES),
    ("GET", "/fapi/v1/algoOrder"): Route(get_algo_order, FUTURES),
    ("DELETE", "/fapi/v1/algoOrder"): Route(cancel_algo_order, FUTURES),
    ("GET", "/fapi/v1/openAlgoOrders"): Route(open_algo_orders, FUTURES),
    ("DELETE", "/fapi/v1/algoOpenOrders"): Route(cancel_all_algo, FUTURES),
    ("GET", "/fapi/v1/allAlgoOrders"): Route(all_algo_orders, FUTURES),
}
