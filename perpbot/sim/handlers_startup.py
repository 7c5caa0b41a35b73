"""Endpoints a bot calls at start-up or in reconciliation, beyond trading itself.

Balances (``/fapi/v2|v3/balance``), fees (``commissionRate``), order history
(``allOrders``), funding (``fundingRate`` history, ``fundingInfo``), public trades
(``trades``, ``aggTrades``: one aggregate per trade), ``openInterest`` (the users' and
the leveraged crowd's open long size; the synthetic crowd holds the other side),
liquidations (``forceOrders``),
``adlQuantile`` (liquidation.py's ranking), ``apiTradingStatus`` (no indicators),
``multiAssetsMargin`` (single-asset only), ``positionSide/dual`` (GET, and POST to switch
between one-way and hedge mode), ``accountConfig`` and ``rateLimit/order``.
"""

from __future__ import annotations

from typing import Any

from perpbot.sim import errors as E
from perpbot.sim import liquidation, payloads, trading
from perpbot.sim.engine import Engine
from perpbot.sim.routing import Ctx, Route, int_param, window
from perpbot.sim.spec import fmt_float

FUTURES = "enableFutures"


def balance(engine: Engine, ctx: Ctx) -> Any:
    acct = ctx.acct
    view = engine.view(acct)
    return [
        {
            "accountAlias": "SgsR" + acct.api_key[:4],
            "asset": "USDT",
            "balance": fmt_float(view.wallet),
            "crossWalletBalance": fmt_float(view.cross_wallet),
            "crossUnPnl": fmt_float(view.cross_upnl),
            "availableBalance": fmt_float(view.available),
            "maxWithdrawAmount": fmt_float(min(view.available, view.cross_wallet)),
            "marginAvailable": True,
            "updateTime": acct.update_time or acct.create_time,
        }
    ]


def commission_rate(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params)
    fees = engine.cfg.fees
    return {
        "symbol": symbol,
        "makerCommissionRate": f"{fees.maker:.6f}",
        "takerCommissionRate": f"{fees.taker:.6f}",
    }


def all_orders(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params)
    from_id = int_param(ctx.params, "orderId")
    mine = [
        o
        for o in engine.orders.values()
        if o.account == ctx.acct.api_key
        and o.symbol == symbol
        and o.recorded
        and (from_id is None or o.order_id >= from_id)
    ]
    chosen = window(mine, lambda o: o.time, ctx.params, 500, 1000)
    if from_id is not None:
        chosen = mine[: int_param(ctx.params, "limit", 500, 1, 1000) or 500]
    return [payloads.order(engine, o, with_time=True) for o in chosen]


def funding_rate_history(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params) if ctx.params.get("symbol") else None
    rows = [e for e in engine.funding_history if symbol is None or e["symbol"] == symbol]
    chosen = window(rows, lambda e: int(e["fundingTime"]), ctx.params, 100, 1000)
    return [
        {
            "symbol": e["symbol"],
            "fundingRate": fmt_float(float(e["rate"])),
            "fundingTime": e["fundingTime"],
            "markPrice": fmt_float(float(e["mark"])),
        }
        for e in chosen
    ]


def funding_info(engine: Engine, ctx: Ctx) -> Any:
    cap = engine.cfg.funding.rate_cap
    return [
        {
            "symbol": sym,
            "adjustedFundingRateCap": f"{cap:.8f}",
            "adjustedFundingRateFloor": f"{-cap:.8f}",
            "fundingIntervalHours": mkt.funding_interval_ms // 3_600_000,
            "disclaimer": False,
        }
        for sym, mkt in engine.markets.items()
    ]


def _tape(engine: Engine, ctx: Ctx) -> tuple[Any, list[tuple[int, int, int, int, bool]]]:
    symbol = trading.spec_of(engine, ctx.params)
    mkt = engine.markets[symbol]
    limit = int_param(ctx.params, "limit", 500, 1, 1000) or 500
    return mkt.spec, list(mkt.tape)[-limit:]


def trades(engine: Engine, ctx: Ctx) -> Any:
    spec, tape = _tape(engine, ctx)
    return [
        {
            "id": tid,
            "price": spec.fmt_px(px),
            "qty": spec.fmt_qty(qty),
            "quoteQty": f"{spec.px(px) * spec.qty(qty):.{spec.pp + spec.qp}f}",
            "time": t,
            "isBuyerMaker": buyer_maker,
        }
        for tid, px, qty, t, buyer_maker in tape
    ]


def agg_trades(engine: Engine, ctx: Ctx) -> Any:
    spec, tape = _tape(engine, ctx)
    start, end = int_param(ctx.params, "startTime"), int_param(ctx.params, "endTime")
    return [
        {
            "a": tid,
            "p": spec.fmt_px(px),
            "q": spec.fmt_qty(qty),
            "f": tid,
            "l": tid,
            "T": t,
            "m": buyer_maker,
        }
        for tid, px, qty, t, buyer_maker in tape
        if (start is None or t >= start) and (end is None or t <= end)
    ]


def open_interest(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params)
    spec = engine.specs[symbol]
    longs = sum(
        max(0, p.amt)
        for a in engine.accounts.values()
        for p in a.positions.values()
        if p.symbol == symbol
    ) + engine.crowd_long(symbol)  # the leveraged crowd's open longs (crowd_traders.py)
    return {"openInterest": spec.fmt_qty(longs), "symbol": symbol, "time": engine.clock.now_ms()}


def force_orders(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params) if ctx.params.get("symbol") else None
    mine = [
        o
        for o in engine.orders.values()
        if o.account == ctx.acct.api_key
        and o.orig_type == "LIQUIDATION"
        and (symbol is None or o.symbol == symbol)
    ]
    chosen = window(mine, lambda o: o.time, ctx.params, 50, 100)
    return [payloads.order(engine, o, with_time=True) for o in chosen]


def adl_quantile(engine: Engine, ctx: Ctx) -> Any:
    symbol = trading.spec_of(engine, ctx.params) if ctx.params.get("symbol") else None
    rows = []
    for sym in engine.specs:
        if symbol is not None and sym != symbol:
            continue
        quantile = liquidation.adl_quantile(engine, ctx.acct, sym)
        rows.append(
            {"symbol": sym, "adlQuantile": {"LONG": 0, "SHORT": 0, "HEDGE": 0, "BOTH": quantile}}
        )
    return rows


def api_trading_status(engine: Engine, ctx: Ctx) -> Any:
    return {"indicators": {}, "updateTime": engine.clock.now_ms()}


def multi_assets_margin(engine: Engine, ctx: Ctx) -> Any:
    return {"multiAssetsMargin": False}


def position_side_dual(engine: Engine, ctx: Ctx) -> Any:
    return {"dualSidePosition": ctx.acct.dual_side}


def change_position_side(engine: Engine, ctx: Ctx) -> Any:
    """Change Position Mode: hedge (true) or one-way (false), only while the account holds
    no position and no open order in any symbol (Binance: -4068 / -4067; -4059 if same)."""
    raw = ctx.params.get("dualSidePosition")
    if not raw:
        raise E.mandatory("dualSidePosition")
    if raw.lower() not in ("true", "false"):
        raise E.illegal("dualSidePosition")
    wanted = raw.lower() == "true"
    acct = ctx.acct
    if acct.dual_side == wanted:
        raise E.SimError(-4059, "No need to change position side.")
    if any(p.amt for p in acct.positions.values()):
        raise E.SimError(-4068, "Position side cannot be changed if there exists position.")
    if engine.open_of(acct.api_key) or any(
        a.account == acct.api_key and a.is_open for a in engine.algo_orders.values()
    ):
        raise E.SimError(-4067, "Position side cannot be changed if there exists open orders.")
    acct.dual_side = wanted
    acct.positions.clear()  # all flat: the next fills open positions of the new mode
    acct.update_time = engine.clock.now_ms()
    return {"code": 200, "msg": "success"}


def account_config(engine: Engine, ctx: Ctx) -> Any:
    acct = ctx.acct
    return {
        "feeTier": 0,
        "canTrade": acct.permissions.get("enableFutures", False),
        "canDeposit": True,
        "canWithdraw": acct.permissions.get("enableWithdrawals", False),
        "dualSidePosition": acct.dual_side,
        "updateTime": acct.update_time or acct.create_time,
        "multiAssetsMargin": False,
        "tradeGroupId": -1,
    }


def order_rate_limits(engine: Engine, ctx: Ctx) -> Any:
    """Query User Rate Limit: the account's ORDERS limits (as exchangeInfo lists them)."""
    return [r for r in engine.limits.exchange_info_limits() if r["rateLimitType"] == "ORDERS"]


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v2/balance"): Route(balance, FUTURES),
    ("GET", "/fapi/v3/balance"): Route(balance, FUTURES),
    ("GET", "/fapi/v1/commissionRate"): Route(commission_rate, FUTURES),
    ("GET", "/fapi/v1/allOrders"): Route(all_orders, FUTURES),
    ("GET", "/fapi/v1/fundingRate"): Route(funding_rate_history),
    ("GET", "/fapi/v1/fundingInfo"): Route(funding_info),
    ("GET", "/fapi/v1/trades"): Route(trades),
    ("GET", "/fapi/v1/aggTrades"): Route(agg_trades),
    ("GET", "/fapi/v1/openInterest"): Route(open_interest),
    ("GET", "/fapi/v1/forceOrders"): Route(force_orders, FUTURES),
    ("GET", "/fapi/v1/adlQuantile"): Route(adl_quantile, FUTURES),
    ("GET", "/fapi/v1/apiTradingStatus"): Route(api_trading_status, FUTURES),
    ("GET", "/fapi/v1/multiAssetsMargin"): Route(multi_assets_margin, FUTURES),
    ("GET", "/fapi/v1/positionSide/dual"): Route(position_side_dual, FUTURES),
    ("POST", "/fapi/v1/positionSide/dual"): Route(change_position_side, FUTURES),
    ("GET", "/fapi/v1/accountConfig"): Route(account_config, FUTURES),
    ("GET", "/fapi/v1/rateLimit/order"): Route(order_rate_limits, FUTURES),
}
