"""The Algo Service: conditional orders (stop, take-profit, trailing stop) and their triggers.

Since Dec 2025 Binance USD-M takes STOP_MARKET, TAKE_PROFIT_MARKET, STOP, TAKE_PROFIT and
TRAILING_STOP_MARKET only through ``POST /fapi/v1/algoOrder`` (``/fapi/v1/order`` answers
-4120). An algo order waits outside the book; when its trigger fires on the mark price
(``workingType=MARK_PRICE``) or the last price (``CONTRACT_PRICE``, the default) it is
placed in the matching engine as a MARKET order (the ``*_MARKET`` types) or a LIMIT order
at ``price`` (STOP, TAKE_PROFIT), and its ``actualOrderId`` names that order.

Trigger rules (Binance's): STOP / STOP_MARKET buy when price >= triggerPrice, sell when
price <= triggerPrice; TAKE_PROFIT / TAKE_PROFIT_MARKET the opposite; a trailing stop
activates when the price reaches ``activatePrice`` (at once without one), then tracks the
best price since and fires when the price has come back ``callbackRate`` percent from it.
``closePosition=true`` closes the whole position at trigger time (reduce-only); with no
position left then, the algo order expires. One waiting ``closePosition`` order per type
(STOP_MARKET, TAKE_PROFIT_MARKET) and closing direction (side, and ``positionSide`` in hedge
mode) per account and symbol: a second is refused with -4130 "An open stop or take profit
order with GTE and closePosition in the direction is existing." (as other bots report it from
live use). Reduce-only orders with a quantity are not limited so.

Hedge mode (``dualSidePosition``): ``positionSide`` LONG or SHORT must be sent and
``reduceOnly`` may not be (the same refusals as New Order: -4061, -1106). The triggered order
carries the algo order's ``positionSide``, so SELL LONG / BUY SHORT close that side only;
``closePosition`` closes the whole of that side. ``priceMatch`` (STOP / TAKE_PROFIT only, never
with ``price``) is resolved when the trigger fires: the child LIMIT takes the matched price
then. Triggers are checked at every market step and after every jump, so they fire within one
step (``tick_ms``) of the price crossing.

What the simulator does where Binance does not say: the dead-man switch
(``countdownCancelAll``) and ``DELETE /fapi/v1/allOpenOrders`` leave algo orders standing
(only ``DELETE /fapi/v1/algoOpenOrders`` / ``algoOrder`` cancel them); a liquidation
expires the account's algo orders in that symbol.
"""

from __future__ import annotations

from collections.abc import Mapping

from perpbot.sim import errors as E
from perpbot.sim import trading
from perpbot.sim.engine import Engine
from perpbot.sim.models import Account, AlgoOrder, position_key

TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "STOP", "TAKE_PROFIT", "TRAILING_STOP_MARKET")
MARKET_TYPES = ("STOP_MARKET", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET")
WORKING_TYPES = ("MARK_PRICE", "CONTRACT_PRICE")
CALLBACK_RANGE = (0.1, 10.0)


def attach(engine: Engine) -> None:
    """Register the trigger check on the engine's market steps."""
    engine.step_hooks.append(lambda symbol, t: check_triggers(engine, symbol, t))


def _not_required(name: str) -> E.SimError:
    return E.SimError(-1106, f"Parameter '{name}' sent when not required.")


def _invalid(name: str) -> E.SimError:
    return E.SimError(-1130, f"Data sent for parameter '{name}' is not valid.")


# -- placement -------------------------------------------------------------------------
def place(engine: Engine, acct: Account, params: Mapping[str, str]) -> AlgoOrder:
    """Validate and store one algo order (POST /fapi/v1/algoOrder)."""
    if trading.required(params, "algoType").upper() != "CONDITIONAL":
        raise _invalid("algoType")
    symbol = trading.spec_of(engine, params)
    spec = engine.specs[symbol]
    side = trading.required(params, "side").upper()
    if side not in ("BUY", "SELL"):
        raise E.SimError(-1117, "Invalid side.")
    otype = trading.required(params, "type").upper()
    if otype not in TYPES:
        raise E.SimError(-1116, "Invalid orderType.")
    position_side = params.get("positionSide", "BOTH").upper()
    if (position_side != "BOTH") != acct.dual_side or position_side not in trading.POSITION_SIDES:
        raise E.SimError(-4061, "Order's position side does not match user's setting.")
    if acct.dual_side and "reduceOnly" in params:
        raise _not_required("reduceonly")
    close = trading.parse_bool(params, "closePosition")
    reduce_only = trading.parse_bool(params, "reduceOnly")
    if close:
        if otype not in ("STOP_MARKET", "TAKE_PROFIT_MARKET"):
            raise E.SimError(
                -4136, f"Target strategy invalid for orderType {otype},closePosition true"
            )
        if params.get("quantity"):
            raise _not_required("quantity")
        if "reduceOnly" in params:
            raise _not_required("reduceOnly")
        _one_close_position(engine, acct, symbol, otype, side, position_side)
        qty = 0
    else:
        qty = spec.parse_qty(trading.required(params, "quantity"), market=otype in MARKET_TYPES)
    price = 0
    tif = params.get("timeInForce", "GTC").upper()
    match = _price_match(params, otype)
    if otype in ("STOP", "TAKE_PROFIT"):
        if tif not in trading.TIFS:
            raise E.SimError(-1115, "Invalid timeInForce.")
        if match == "NONE":
            price = spec.parse_price(trading.required(params, "price"))
    elif params.get("price"):
        raise _not_required("price")
    working = params.get("workingType", "CONTRACT_PRICE").upper()
    if working not in WORKING_TYPES:
        raise _invalid("workingType")
    trigger, callback, activate = 0, 0.0, 0
    if otype == "TRAILING_STOP_MARKET":
        try:
            callback = float(trading.required(params, "callbackRate"))
        except ValueError:
            raise E.illegal("callbackRate") from None
        if not CALLBACK_RANGE[0] <= callback <= CALLBACK_RANGE[1]:
            raise _invalid("callbackRate")
        if params.get("activatePrice"):
            activate = spec.parse_price(params["activatePrice"])
    else:
        trigger = spec.parse_price(trading.required(params, "triggerPrice"))
    cid = params.get("clientAlgoId") or f"sim-algo-{engine.next_algo_id}"
    if not trading.CID_RE.match(cid):
        raise E.illegal("clientAlgoId")
    if any(
        a.is_open and a.account == acct.api_key and a.client_algo_id == cid
        for a in engine.algo_orders.values()
    ):
        raise E.err(E.DUPLICATE_CID)
    ref = spec.px(price or trigger or activate) or engine.markets[symbol].mark
    closes = (position_side, side) in (("LONG", "SELL"), ("SHORT", "BUY"))
    if not (close or reduce_only or closes) and ref * spec.qty(qty) < spec.min_notional:
        raise E.SimError(
            -4164,
            f"Order's notional must be no smaller than "
            f"{spec.cfg.min_notional} (unless you choose reduce only).",
        )
    now = engine.clock.now_ms()
    algo = AlgoOrder(
        engine.next_algo_id,
        cid,
        acct.api_key,
        symbol,
        side,
        otype,
        qty,
        price,
        trigger,
        tif,
        working,
        close,
        reduce_only,
        trading.parse_bool(params, "priceProtect"),
        now,
        callback_rate=callback,
        activate_price=activate,
        update_time=now,
        position_side=position_side,
        price_match=match,
    )
    current = trigger_price_of(engine, algo)
    if otype != "TRAILING_STOP_MARKET" and _crossed(engine, algo, current):
        raise E.SimError(-2021, "Order would immediately trigger.")
    if otype == "TRAILING_STOP_MARKET" and not activate:
        algo.extreme = current
    engine.next_algo_id += 1
    engine.algo_orders[algo.algo_id] = algo
    return algo


def _one_close_position(
    engine: Engine, acct: Account, symbol: str, otype: str, side: str, position_side: str
) -> None:
    """-4130: a waiting closePosition order of this type and direction already stands."""
    if any(
        a.algo_status == "NEW"
        and a.close_position
        and (a.account, a.symbol, a.order_type, a.side, a.position_side)
        == (acct.api_key, symbol, otype, side, position_side)
        for a in engine.algo_orders.values()
    ):
        raise E.err(E.CLOSE_POSITION_EXISTS)


def _price_match(params: Mapping[str, str], otype: str) -> str:
    """priceMatch (New Algo Order): STOP / TAKE_PROFIT only, never with a price; "NONE"
    when absent. The same codes as New Order's priceMatch (trading._price_match)."""
    match = params.get("priceMatch", "NONE").upper() or "NONE"
    if match == "NONE":
        return match
    if match not in trading.PRICE_MATCHES:
        raise E.SimError(-5037, "Invalid price match")
    if otype not in ("STOP", "TAKE_PROFIT"):
        raise E.SimError(-5038, "Price match only supports order type: LIMIT, STOP AND TAKE_PROFIT")
    if params.get("price"):
        raise _not_required("price")
    return match


# -- triggers --------------------------------------------------------------------------
def trigger_price_of(engine: Engine, algo: AlgoOrder) -> float:
    """The price the algo order watches: mark (MARK_PRICE) or last trade (CONTRACT_PRICE)."""
    mkt = engine.markets[algo.symbol]
    if algo.working_type == "MARK_PRICE":
        return mkt.mark
    return mkt.spec.px(mkt.last_trade_px)


def _crossed(engine: Engine, algo: AlgoOrder, price: float) -> bool:
    trigger = engine.specs[algo.symbol].px(algo.trigger_price)
    stop_like = algo.order_type in ("STOP", "STOP_MARKET")
    rising = (algo.side == "BUY") == stop_like  # fires on a rise: stop-buy, TP-sell
    return price >= trigger if rising else price <= trigger


def _trailing_fires(engine: Engine, algo: AlgoOrder, price: float) -> bool:
    spec = engine.specs[algo.symbol]
    if algo.extreme == 0.0:
        act = spec.px(algo.activate_price)
        if (algo.side == "SELL" and price >= act) or (algo.side == "BUY" and price <= act):
            algo.extreme = price
        return False
    if algo.side == "SELL":
        algo.extreme = max(algo.extreme, price)
        return price <= algo.extreme * (1.0 - algo.callback_rate / 100.0)
    algo.extreme = min(algo.extreme, price)
    return price >= algo.extreme * (1.0 + algo.callback_rate / 100.0)


def check_triggers(engine: Engine, symbol: str, t: int) -> None:
    """Fire every open algo order of ``symbol`` whose condition holds at time ``t``."""
    for algo in [a for a in engine.algo_orders.values() if a.symbol == symbol and a.is_open]:
        if algo.algo_status == "TRIGGERED":
            order = engine.orders.get(algo.actual_order_id or 0)
            if order is None or not order.is_open:
                algo.algo_status, algo.update_time = "FINISHED", t
            continue
        price = trigger_price_of(engine, algo)
        if algo.order_type == "TRAILING_STOP_MARKET":
            fired = _trailing_fires(engine, algo, price)
        else:
            fired = _crossed(engine, algo, price)
        if fired:
            _fire(engine, algo, t)


def _fire(engine: Engine, algo: AlgoOrder, t: int) -> None:
    acct = engine.accounts[algo.account]
    spec = engine.specs[algo.symbol]
    algo.algo_status, algo.trigger_time, algo.update_time = "TRIGGERING", t, t
    qty = algo.qty
    if algo.close_position:
        pos = acct.positions.get(position_key(algo.symbol, algo.position_side))
        amt = pos.amt if pos else 0
        if amt == 0 or (amt > 0) == (algo.side == "BUY"):
            algo.algo_status, algo.reject_reason = "EXPIRED", "no position to close"
            return
        qty = abs(amt)
    params = {
        "symbol": algo.symbol,
        "side": algo.side,
        "type": "MARKET" if algo.order_type in MARKET_TYPES else "LIMIT",
        "quantity": spec.fmt_qty(qty),
        "newClientOrderId": algo.client_algo_id,
    }
    if algo.position_side != "BOTH":
        params["positionSide"] = algo.position_side  # hedge: a close is SELL LONG / BUY SHORT
    elif algo.close_position or algo.reduce_only:
        params["reduceOnly"] = "true"
    if params["type"] == "LIMIT":
        params["timeInForce"] = algo.tif
        if algo.price_match == "NONE":
            params["price"] = spec.fmt_px(algo.price)
        else:
            params["priceMatch"] = algo.price_match  # the price is matched now, at trigger
    try:
        order = trading.place_order(engine, acct, params, close_all=algo.close_position)
    except E.SimError as exc:
        algo.algo_status, algo.reject_reason = "REJECTED", f"{exc.code}: {exc.msg}"
        return
    order.orig_type = algo.order_type
    algo.actual_order_id = order.order_id
    algo.algo_status = "TRIGGERED" if order.is_open else "FINISHED"


# -- queries and cancels ---------------------------------------------------------------
def find(engine: Engine, acct: Account, params: Mapping[str, str]) -> AlgoOrder:
    raw_id, cid = params.get("algoId"), params.get("clientAlgoId")
    if not raw_id and not cid:
        raise E.SimError(
            -1102, "Param 'algoId' or 'clientAlgoId' must be sent, but both were empty/null!"
        )
    mine = [a for a in engine.algo_orders.values() if a.account == acct.api_key]
    if raw_id:
        try:
            algo_id = int(raw_id)
        except ValueError:
            raise E.illegal("algoId") from None
        found = [a for a in mine if a.algo_id == algo_id]
    else:
        found = [a for a in mine if a.client_algo_id == cid]
    if not found:
        raise E.err(E.ORDER_NOT_EXIST)
    return found[-1]


def cancel(engine: Engine, acct: Account, params: Mapping[str, str]) -> AlgoOrder:
    try:
        algo = find(engine, acct, params)
    except E.SimError as exc:
        if exc.code == E.ORDER_NOT_EXIST[0]:
            raise E.err(E.UNKNOWN_ORDER_CANCEL) from None
        raise
    if algo.algo_status != "NEW":
        raise E.err(E.UNKNOWN_ORDER_CANCEL)
    now = engine.clock.now_ms()
    algo.algo_status, algo.update_time = "CANCELED", now
    return algo


def cancel_all(engine: Engine, acct: Account, symbol: str, status: str = "CANCELED") -> int:
    now = engine.clock.now_ms()
    hit = [
        a
        for a in engine.algo_orders.values()
        if a.account == acct.api_key and a.symbol == symbol and a.algo_status == "NEW"
    ]
    for algo in hit:
        algo.algo_status, algo.update_time = status, now
    return len(hit)
