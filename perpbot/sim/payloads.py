"""Binance-shaped JSON builders: same keys, key order and number formats as Binance.

Decimals are strings at the symbol's precision ("59000.10", "0.010"), ids and times are
integers, money has 8 decimals. Field fidelity matters because ccxt silently returns None
for a missing key and some of perpbot's checks read ``info`` directly.
"""

from __future__ import annotations

from typing import Any

from perpbot.sim import margin
from perpbot.sim.engine import Engine
from perpbot.sim.models import Account, AlgoOrder, Order, Trade, position_key
from perpbot.sim.spec import SymbolSpec, fmt_float

ORDER_TYPES = [
    "LIMIT",
    "MARKET",
    "STOP",
    "STOP_MARKET",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TRAILING_STOP_MARKET",
]
TIME_IN_FORCE = ["GTC", "IOC", "FOK", "GTX", "GTD"]


def order(
    engine: Engine, o: Order, *, with_time: bool = False, cum_qty: bool = False, ack: bool = False
) -> dict[str, Any]:
    spec = engine.specs[o.symbol]
    executed = 0 if ack else o.executed
    cum_quote = 0.0 if ack else o.cum_quote
    avg = cum_quote / spec.qty(executed) if executed else 0.0
    body: dict[str, Any] = {
        "orderId": o.order_id,
        "symbol": o.symbol,
        "status": "NEW" if ack else o.status,
        "clientOrderId": o.client_order_id,
        "price": spec.fmt_px(o.price),
        "avgPrice": f"{avg:.{max(spec.pp, 5) if executed else spec.pp}f}",
        "origQty": spec.fmt_qty(o.qty),
        "executedQty": spec.fmt_qty(executed),
    }
    if cum_qty:
        body["cumQty"] = spec.fmt_qty(executed)
    body.update(
        {
            "cumQuote": f"{cum_quote:.{spec.pp + spec.qp}f}",
            "timeInForce": o.tif,
            "type": o.type,
            "reduceOnly": o.reduce_only,
            "closePosition": False,
            "side": o.side,
            "positionSide": o.position_side,
            "stopPrice": spec.fmt_px(0),
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": o.orig_type or o.type,
            "priceMatch": o.price_match,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "goodTillDate": o.good_till_date,
        }
    )
    if with_time:
        body["time"] = o.time
    body["updateTime"] = o.time if ack else o.update_time
    return body


def trade(engine: Engine, t: Trade) -> dict[str, Any]:
    spec = engine.specs[t.symbol]
    return {
        "symbol": t.symbol,
        "id": t.trade_id,
        "orderId": t.order_id,
        "side": t.side,
        "price": spec.fmt_px(t.price),
        "qty": spec.fmt_qty(t.qty),
        "realizedPnl": fmt_float(t.realized_pnl),
        "marginAsset": spec.quote,
        "quoteQty": f"{t.quote_qty:.{spec.pp + spec.qp}f}",
        "commission": fmt_float(t.commission),
        "commissionAsset": spec.quote,
        "time": t.time,
        "positionSide": engine.orders[t.order_id].position_side,
        "maker": t.maker,
        "buyer": t.side == "BUY",
    }


def _asset(view: margin.MarginView, acct: Account, v2: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "asset": "USDT",
        "walletBalance": fmt_float(view.wallet),
        "unrealizedProfit": fmt_float(view.upnl),
        "marginBalance": fmt_float(view.margin_balance),
        "maintMargin": fmt_float(view.maint),
        "initialMargin": fmt_float(view.pos_im + view.order_im),
        "positionInitialMargin": fmt_float(view.pos_im),
        "openOrderInitialMargin": fmt_float(view.order_im),
        "crossWalletBalance": fmt_float(view.cross_wallet),
        "crossUnPnl": fmt_float(view.cross_upnl),
        "availableBalance": fmt_float(view.available),
        "maxWithdrawAmount": fmt_float(min(view.available, view.cross_wallet)),
    }
    if v2:
        body["marginAvailable"] = True
    body["updateTime"] = acct.update_time or acct.create_time
    return body


def _totals(view: margin.MarginView) -> dict[str, Any]:
    return {
        "totalInitialMargin": fmt_float(view.pos_im + view.order_im),
        "totalMaintMargin": fmt_float(view.maint),
        "totalWalletBalance": fmt_float(view.wallet),
        "totalUnrealizedProfit": fmt_float(view.upnl),
        "totalMarginBalance": fmt_float(view.margin_balance),
        "totalPositionInitialMargin": fmt_float(view.pos_im),
        "totalOpenOrderInitialMargin": fmt_float(view.order_im),
        "totalCrossWalletBalance": fmt_float(view.cross_wallet),
        "totalCrossUnPnl": fmt_float(view.cross_upnl),
        "availableBalance": fmt_float(view.available),
        "maxWithdrawAmount": fmt_float(min(view.available, view.cross_wallet)),
    }


def account_v3(engine: Engine, acct: Account) -> dict[str, Any]:
    view = engine.view(acct)
    body = _totals(view)
    body["assets"] = [_asset(view, acct, v2=False)]
    body["positions"] = [
        {
            "symbol": pv.spec.symbol,
            "positionSide": pv.pos.side,
            "positionAmt": pv.spec.fmt_qty(pv.pos.amt),
            "unrealizedProfit": fmt_float(pv.upnl),
            "isolatedMargin": fmt_float(pv.pos.isolated_wallet + pv.upnl if pv.isolated else 0.0),
            "notional": fmt_float(pv.notional),
            "isolatedWallet": fmt_float(pv.pos.isolated_wallet if pv.isolated else 0.0),
            "initialMargin": fmt_float(pv.im),
            "maintMargin": fmt_float(pv.mm),
            "updateTime": pv.pos.update_time,
        }
        for pv in view.positions
    ]
    return body


def account_v2(engine: Engine, acct: Account) -> dict[str, Any]:
    view = engine.view(acct)
    body: dict[str, Any] = {
        "feeTier": 0,
        "canTrade": acct.permissions.get("enableFutures", False),
        "canDeposit": True,
        "canWithdraw": acct.permissions.get("enableWithdrawals", False),
        "tradeGroupId": -1,
        "updateTime": 0,
        "multiAssetsMargin": False,
    }
    body.update(_totals(view))
    body["assets"] = [_asset(view, acct, v2=True)]
    by_key = {position_key(pv.spec.symbol, pv.pos.side): pv for pv in view.positions}
    positions = []
    for symbol, spec, side in _position_rows(engine, acct):
        pv = by_key.get(position_key(symbol, side))
        lev = margin.leverage_of(acct, symbol, engine.cfg.default_leverage)
        orders_im = sum(
            o.remaining * spec.step_f * spec.px(o.price) / lev
            for o in engine.open_of(acct.api_key, symbol)
            if not o.closing and o.position_side == side
        )
        positions.append(
            {
                "symbol": symbol,
                "initialMargin": fmt_float((pv.im if pv else 0.0) + orders_im),
                "maintMargin": fmt_float(pv.mm if pv else 0.0),
                "unrealizedProfit": fmt_float(pv.upnl if pv else 0.0),
                "positionInitialMargin": fmt_float(pv.im if pv else 0.0),
                "openOrderInitialMargin": fmt_float(orders_im),
                "leverage": str(lev),
                "isolated": margin.is_isolated(acct, symbol),
                "entryPrice": fmt_float(pv.pos.entry if pv else 0.0),
                "breakEvenPrice": fmt_float(_break_even(engine, pv) if pv else 0.0),
                "maxNotional": f"{margin.max_notional_for_leverage(lev):.0f}",
                "positionSide": side,
                "positionAmt": spec.fmt_qty(pv.pos.amt if pv else 0),
                "notional": fmt_float(pv.notional if pv else 0.0),
                "isolatedWallet": fmt_float(pv.pos.isolated_wallet if pv else 0.0),
                "updateTime": pv.pos.update_time if pv else 0,
                "bidNotional": "0",
                "askNotional": "0",
            }
        )
    body["positions"] = positions
    return body


def _break_even(engine: Engine, pv: margin.PositionView) -> float:
    fee = engine.cfg.fees.taker
    return pv.pos.entry * (1 + fee) if pv.amt > 0 else pv.pos.entry * (1 - fee)


def _side_notional(engine: Engine, acct: Account, spec: SymbolSpec, side: str) -> float:
    return sum(
        o.remaining * spec.step_f * spec.px(o.price)
        for o in engine.open_of(acct.api_key, spec.symbol)
        if o.side == side
    )


def _position_rows(engine: Engine, acct: Account) -> list[tuple[str, SymbolSpec, str]]:
    """(symbol, spec, positionSide) of each position row: BOTH in one-way mode, LONG and
    SHORT in hedge mode."""
    sides = ("LONG", "SHORT") if acct.dual_side else ("BOTH",)
    return [(sym, spec, side) for sym, spec in engine.specs.items() for side in sides]


def position_risk(engine: Engine, acct: Account, symbol: str | None, v2: bool) -> list[Any]:
    view = engine.view(acct)
    by_key = {position_key(pv.spec.symbol, pv.pos.side): pv for pv in view.positions}
    rows: list[Any] = []
    for sym, spec, side in _position_rows(engine, acct):
        if symbol is not None and sym != symbol:
            continue
        pv = by_key.get(position_key(sym, side))
        has_orders = bool(engine.open_of(acct.api_key, sym))
        if pv is None and not v2 and not has_orders:
            continue  # v3 lists only symbols with a position or open orders
        mark = engine.markets[sym].mark
        lev = margin.leverage_of(acct, sym, engine.cfg.default_leverage)
        iso = margin.is_isolated(acct, sym)
        amt = spec.fmt_qty(pv.pos.amt if pv else 0)
        entry = spec.fmt_price_f(pv.pos.entry) if pv else "0.0"
        upnl = fmt_float(pv.upnl if pv else 0.0)
        liq = fmt_float(pv.liq_price) if pv else "0"
        iso_wallet = fmt_float(pv.pos.isolated_wallet) if pv and iso else "0"
        iso_margin = fmt_float(pv.pos.isolated_wallet + pv.upnl) if pv and iso else "0"
        notional = fmt_float(pv.notional if pv else 0.0)
        break_even = fmt_float(_break_even(engine, pv)) if pv else "0.0"
        t = pv.pos.update_time if pv else 0
        if v2:
            rows.append(
                {
                    "symbol": sym,
                    "positionAmt": amt,
                    "entryPrice": entry,
                    "breakEvenPrice": break_even,
                    "markPrice": fmt_float(mark),
                    "unRealizedProfit": upnl,
                    "liquidationPrice": liq,
                    "leverage": str(lev),
                    "maxNotionalValue": f"{margin.max_notional_for_leverage(lev):.0f}",
                    "marginType": "isolated" if iso else "cross",
                    "isolatedMargin": iso_margin,
                    "isAutoAddMargin": "false",
                    "positionSide": side,
                    "notional": notional,
                    "isolatedWallet": iso_wallet,
                    "updateTime": t,
                    "isolated": iso,
                    "adlQuantile": 2 if pv else 0,
                }
            )
            continue
        im = pv.im if pv else 0.0
        orders_im = sum(
            o.remaining * spec.step_f * spec.px(o.price) / lev
            for o in engine.open_of(acct.api_key, sym)
            if not o.closing and o.position_side == side
        )
        rows.append(
            {
                "symbol": sym,
                "positionSide": side,
                "positionAmt": amt,
                "entryPrice": entry,
                "breakEvenPrice": break_even,
                "markPrice": fmt_float(mark),
                "unRealizedProfit": upnl,
                "liquidationPrice": liq,
                "isolatedMargin": iso_margin,
                "notional": notional,
                "marginAsset": spec.quote,
                "isolatedWallet": iso_wallet,
                "initialMargin": fmt_float(im + orders_im),
                "maintMargin": fmt_float(pv.mm if pv else 0.0),
                "positionInitialMargin": fmt_float(im),
                "openOrderInitialMargin": fmt_float(orders_im),
                "adl": 2 if pv else 0,
                "bidNotional": fmt_float(_side_notional(engine, acct, spec, "BUY")),
                "askNotional": fmt_float(_side_notional(engine, acct, spec, "SELL")),
                "updateTime": t,
            }
        )
    return rows


def symbol_info(spec: SymbolSpec) -> dict[str, Any]:
    c = spec.cfg
    return {
        "symbol": spec.symbol,
        "pair": spec.symbol,
        "contractType": "PERPETUAL",
        "deliveryDate": 4133404800000,
        "onboardDate": 1569398400000,
        "status": "TRADING",
        "maintMarginPercent": "2.5000",
        "requiredMarginPercent": "5.0000",
        "baseAsset": spec.base,
        "quoteAsset": spec.quote,
        "marginAsset": spec.quote,
        "pricePrecision": spec.pp,
        "quantityPrecision": spec.qp,
        "baseAssetPrecision": 8,
        "quotePrecision": 8,
        "underlyingType": "COIN",
        "underlyingSubType": ["PoW"],
        "settlePlan": 0,
        "triggerProtect": "0.0500",
        "liquidationFee": "0.012500",
        "marketTakeBound": f"{c.market_take_bound:.2f}",
        "maxMoveOrderLimit": 10000,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": str(c.min_price),
                "maxPrice": str(c.max_price),
                "tickSize": str(c.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "stepSize": str(c.step_size),
                "maxQty": str(c.max_qty),
                "minQty": str(c.min_qty),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "stepSize": str(c.step_size),
                "maxQty": str(c.market_max_qty),
                "minQty": str(c.min_qty),
            },
            {"filterType": "MAX_NUM_ORDERS", "limit": c.max_num_orders},
            {"filterType": "MIN_NOTIONAL", "notional": str(c.min_notional)},
            {
                "filterType": "PERCENT_PRICE",
                "multiplierUp": f"{c.percent_price_up:.4f}",
                "multiplierDown": f"{c.percent_price_down:.4f}",
                "multiplierDecimal": "4",
            },
        ],
        "orderTypes": list(ORDER_TYPES),
        "timeInForce": list(TIME_IN_FORCE),
    }


def exchange_info(engine: Engine) -> dict[str, Any]:
    return {
        "timezone": "UTC",
        "serverTime": engine.clock.now_ms(),
        "futuresType": "U_MARGINED",
        "rateLimits": engine.limits.exchange_info_limits(),
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [symbol_info(spec) for spec in engine.specs.values()],
    }


def algo_order(engine: Engine, a: AlgoOrder, *, query: bool = False) -> dict[str, Any]:
    """An algo order as Binance renders it (New / Query / Current Open Algo Orders)."""
    spec = engine.specs[a.symbol]
    trailing = a.order_type == "TRAILING_STOP_MARKET"
    body: dict[str, Any] = {
        "algoId": a.algo_id,
        "clientAlgoId": a.client_algo_id,
        "algoType": "CONDITIONAL",
        "orderType": a.order_type,
        "symbol": a.symbol,
        "side": a.side,
        "positionSide": a.position_side,
        "timeInForce": a.tif,
        "quantity": spec.fmt_qty(a.qty),
        "algoStatus": a.algo_status,
    }
    if query:
        actual = engine.orders.get(a.actual_order_id or 0)
        avg = actual.cum_quote / spec.qty(actual.executed) if actual and actual.executed else 0.0
        body["actualOrderId"] = str(a.actual_order_id) if a.actual_order_id else ""
        body["actualPrice"] = f"{avg:.5f}"
    body.update(
        {
            "triggerPrice": spec.fmt_px(a.trigger_price),
            "price": spec.fmt_px(a.price),
            "icebergQuantity": None,
            "selfTradePreventionMode": "EXPIRE_MAKER",
            "workingType": a.working_type,
            "priceMatch": a.price_match,
            "closePosition": a.close_position,
            "priceProtect": a.price_protect,
            "reduceOnly": a.reduce_only,
            "activatePrice": spec.fmt_px(a.activate_price) if trailing else "",
            "callbackRate": f"{a.callback_rate:.1f}" if trailing else "",
            "createTime": a.create_time,
            "updateTime": a.update_time,
            "triggerTime": a.trigger_time,
            "goodTillDate": 0,
        }
    )
    return body
