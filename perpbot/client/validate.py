"""The order boundary: what an order or account-setting call will put on the wire.

ccxt builds a Binance request from the positional arguments and then lays ``params`` over
it (``create_order_request`` and ``set_leverage`` both end with ``extend(request,
params)``). A guard that judged only the arguments could be walked past with
``params={"quantity": ...}``, ``{"symbol": "ETHUSDT"}`` or ``{"leverage": 125}``. So the
guards judge ``wire_order(request)`` / ``wire_leverage(request)``, which

- bind the arguments the way ccxt does (positional, keyword, a positional params dict),
- accept only the params perpbot knows how to judge (``ORDER_PARAMS``) and refuse every
  other one, naming the field it would override (``OVERRIDES``) — one rule for every field
  rather than a list of known bypasses that the next ccxt version extends,
- refuse numbers that are not plain finite numbers (NaN, inf, -0.0, strings, booleans) or
  lie outside the market's own limits, with ``BAD_AMOUNT`` / ``BAD_PRICE``.

Both raise ``OrderRefused`` (a ``BadInput``: exit 2) with a code and one sentence.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from perpbot.client.position_side import HEDGE_SIDES, ONE_WAY, closes, leg
from perpbot.client.price_match import PRICE_MATCHES
from perpbot.client.request import Request, good_till_ms
from perpbot.errors import BadInput, RiskRejected

ORDER_ARGS = ("symbol", "type", "side", "amount", "price")
ORDER_TYPES = ("limit", "market")
SIDES = ("buy", "sell")
TIME_IN_FORCE = ("GTC", "IOC", "FOK", "GTX", "PO", "GTD")
GTD_MAX_MS = 253402300799000  # New Order: goodTillDate must be before 9999-12-31 (-5040)
MAX_LEVERAGE = 125.0  # Binance USD-M's highest; a market may allow less
MARGIN_MODES = ("cross", "crossed", "isolated")

# The params an order may carry: each is judged (the flags by ScopeGate and RiskGate, the
# client id by the idempotency and reservation bookkeeping). Anything else is refused.
ORDER_PARAMS = (
    "clientOrderId",
    "reduceOnly",
    "postOnly",
    "timeInForce",
    "goodTillDate",
    "positionSide",
    "priceMatch",
)

# What a refused param would have changed on the wire (for the sentence). Not the rule:
# a param missing here is refused all the same, as "not a parameter perpbot can judge".
OVERRIDES: dict[str, str] = {
    "symbol": "the symbol",
    "side": "the side",
    "type": "the order type",
    "quantity": "the amount",
    "amount": "the amount",
    "price": "the price",
    "leverage": "the leverage",
    "reduceOnly": "the reduce-only flag",
    "closePosition": "the amount (it closes the whole position)",
    "hedged": "the position side (hedge mode; send positionSide)",
    "stopPrice": "the order type (a stop order)",
    "triggerPrice": "the order type (a trigger order)",
    "stopLossPrice": "the order type (a stop-loss order)",
    "takeProfitPrice": "the order type (a take-profit order)",
    "trailingPercent": "the order type (a trailing stop)",
    "callbackRate": "the order type (a trailing stop)",
    "trailingDelta": "the order type (a trailing stop)",
    "activationPrice": "the order type (a trailing stop)",
    "trailingTriggerPrice": "the order type (a trailing stop)",
    "quoteOrderQty": "the amount (as a cost)",
    "cost": "the amount (as a cost)",
    "newClientOrderId": "the client order id perpbot tracks (use clientOrderId)",
    "clientAlgoId": "the client order id perpbot tracks (use clientOrderId)",
    "isAlgoOrder": "the endpoint (algo orders)",
    "portfolioMargin": "the endpoint (portfolio margin)",
    "marginMode": "the margin mode",
    "marginType": "the margin mode",
}


class OrderRefused(BadInput, RiskRejected):
    """An order or setting refused at the boundary, before any exchange request: bad input
    (exit 2) and, like a risk refusal, one a strategy's runner turns into OrderRejected."""


@dataclass(frozen=True, slots=True)
class WireOrder:
    """A create_order call as ccxt will send it."""

    symbol: str
    type: str
    side: str
    amount: float
    price: float | None
    reduce_only: bool
    post_only: bool
    time_in_force: str | None
    client_order_id: str | None
    good_till_ms: int | None = None  # GTD's expiry as sent (ms)
    position_side: str | None = None  # LONG | SHORT (hedge mode), BOTH, None: not sent
    price_match: str | None = None  # priceMatch as sent (the book sets the price)

    @property
    def closes(self) -> bool:
        """Reduce-only, or a hedge-mode close (SELL LONG, BUY SHORT): it cannot open."""
        return self.reduce_only or closes(self.side, self.position_side)


def _refuse(code: str, sentence: str) -> OrderRefused:
    return OrderRefused(sentence, code=code)


def plain_number(value: Any) -> float | None:
    """``value`` as a float if it is a plain finite int/float (not a bool, not a string)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def _bound(request: Request, names: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(arguments by name, params) the way ccxt binds ``method(*args, **kwargs)``."""
    bound: dict[str, Any] = dict(zip(names, request.args, strict=False))
    extra = request.args[len(names) :]
    params: Any = extra[0] if extra else request.kwargs.get("params")
    if len(extra) > 1:
        raise _refuse(
            "BAD_PARAM", f"{request.method}: {len(request.args)} positional arguments, expected "
            f"at most {len(names) + 1} ({', '.join(names)}, params)",
        )  # fmt: skip
    unknown = set(request.kwargs) - {*names, "params"}
    if unknown:
        raise _refuse(
            "BAD_PARAM",
            f"{request.method}: unknown keyword argument(s) {', '.join(sorted(unknown))}",
        )
    for name in names:
        if name in request.kwargs:
            bound[name] = request.kwargs[name]
    if params is None:
        params = {}
    if not isinstance(params, Mapping):
        raise _refuse("BAD_PARAM", f"{request.method}: params must be a dict, got {params!r}")
    return bound, dict(params)


def _check_params(method: str, params: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    for key in params:
        if key in allowed:
            continue
        what = OVERRIDES.get(str(key))
        reason = (
            f"it would override {what}, which the scope and risk checks judge from the arguments"
            if what
            else "it is not a parameter perpbot can judge"
        )
        hint = f" (allowed: {', '.join(allowed)})" if allowed else " (none are allowed)"
        raise _refuse("BAD_PARAM", f"{method}: refused params[{key!r}]: {reason}{hint}")


def find_market(exchange: Any, symbol: str | None) -> Mapping[str, Any] | None:
    """The loaded ccxt market for a unified symbol or a market id (None: not known)."""
    if symbol is None or exchange is None:
        return None
    markets = getattr(exchange, "markets", None) or {}
    found = markets.get(symbol)
    if found is None:
        found = (getattr(exchange, "markets_by_id", None) or {}).get(symbol)
        if isinstance(found, list):
            found = found[0] if found else None
    return found if isinstance(found, Mapping) else None


def _limit(market: Mapping[str, Any] | None, group: str, end: str) -> float | None:
    if market is None:
        return None
    limits = market.get("limits")
    row = limits.get(group) if isinstance(limits, Mapping) else None
    value = row.get(end) if isinstance(row, Mapping) else None
    got = plain_number(value)
    return got if got is not None and got > 0 else None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _positive(value: Any, code: str, what: str, method: str) -> float:
    number = plain_number(value)
    if number is None or number <= 0:  # (-0.0 <= 0 too)
        raise _refuse(
            code, f"{method}: {what} {_shown(value)} refused: expected a finite number > 0"
        )
    return number


def _within(
    value: float, market: Mapping[str, Any] | None, groups: tuple[str, ...], code: str, what: str
) -> None:
    for group in groups:
        low, high = _limit(market, group, "min"), _limit(market, group, "max")
        if high is not None and value > high * (1 + 1e-12):
            raise _refuse(code, f"create_order: {what} {value:g} is above the market's {high:g}")
        if low is not None and value < low * (1 - 1e-12):
            raise _refuse(code, f"create_order: {what} {value:g} is below the market's {low:g}")


def wire_order(request: Request, exchange: Any = None, hedged: bool | None = None) -> WireOrder:
    """The create_order call as it will be sent; OrderRefused if it cannot be judged.

    ``exchange``: the ccxt exchange, whose loaded markets' amount and price limits are
    enforced (an unknown symbol is left to the exchange to refuse). ``hedged``: the
    account's position mode (``AccountView.hedged``; None: not read, judged as one-way)."""
    method = request.method
    bound, params = _bound(request, ORDER_ARGS)
    _check_params(method, params, ORDER_PARAMS)
    symbol = bound.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise _refuse("BAD_SYMBOL", f"{method}: symbol {_shown(symbol)} refused: expected a name")
    otype = bound.get("type")
    if not isinstance(otype, str) or otype.lower() not in ORDER_TYPES:
        raise _refuse(
            "BAD_ORDER_TYPE", f"{method}: type {_shown(otype)} refused: expected limit or market"
        )
    side = bound.get("side")
    if not isinstance(side, str) or side.lower() not in SIDES:
        raise _refuse("BAD_SIDE", f"{method}: side {_shown(side)} refused: expected buy or sell")
    market = find_market(exchange, symbol)
    amount = _positive(bound.get("amount"), "BAD_AMOUNT", "amount", method)
    groups = ("amount", "market") if otype.lower() == "market" else ("amount",)
    _within(amount, market, groups, "BAD_AMOUNT", "amount")
    raw_price = bound.get("price")
    match = _price_match(method, otype.lower(), raw_price, params)
    price = None
    if raw_price is not None:
        price = _positive(raw_price, "BAD_PRICE", "price", method)
        _within(price, market, ("price",), "BAD_PRICE", "price")
    elif otype.lower() == "limit" and match is None:
        raise _refuse("BAD_PRICE", f"{method}: a limit order needs a price (or a priceMatch)")
    if otype.lower() == "market":
        price = None  # ccxt sends no price with a market order: nothing may be valued at it
    flags = {k: params[k] for k in ("reduceOnly", "postOnly") if k in params}
    for key, flag in flags.items():
        if not isinstance(flag, bool):
            raise _refuse(
                "BAD_PARAM",
                f"{method}: params[{key!r}] {_shown(flag)} refused: expected true/false",
            )
    tif = params.get("timeInForce")
    if tif is not None and (not isinstance(tif, str) or tif.upper() not in TIME_IN_FORCE):
        raise _refuse(
            "BAD_PARAM",
            f"{method}: params['timeInForce'] {_shown(tif)} refused: expected one of "
            + ", ".join(TIME_IN_FORCE),
        )
    good_till = _good_till(method, tif, params.get("goodTillDate"))
    cid = params.get("clientOrderId")
    if cid is not None and (not isinstance(cid, str) or not cid):
        raise _refuse("BAD_PARAM", f"{method}: params['clientOrderId'] {_shown(cid)} refused")
    post_only = flags.get("postOnly") is True or (tif is not None and tif.upper() in ("GTX", "PO"))
    position_side = _position_side(method, params, hedged)
    wire = WireOrder(
        symbol=symbol,
        type=otype.lower(),
        side=side.lower(),
        amount=amount,
        price=price,
        reduce_only=flags.get("reduceOnly") is True,
        post_only=post_only,
        time_in_force=None if tif is None or tif.upper() in ("GTX", "PO") else tif.upper(),
        client_order_id=cid,
        good_till_ms=good_till,
        position_side=position_side,
        price_match=match,
    )
    if request.order is not None:
        _agrees(wire, request.order)
    return wire


def _price_match(method: str, otype: str, price: Any, params: Mapping[str, Any]) -> str | None:
    """priceMatch as sent: one of Binance's values (NONE aside: send a price instead), on a
    LIMIT order, without a price (Binance: -5037, -5038, -1106). Refused here with
    BAD_PRICE_MATCH, before any request."""
    if "priceMatch" not in params:
        return None
    raw = params["priceMatch"]
    if not isinstance(raw, str) or raw not in PRICE_MATCHES:  # Binance's enum: upper case
        raise _refuse(
            "BAD_PRICE_MATCH",
            f"{method}: params['priceMatch'] {_shown(raw)} refused: expected one of "
            + ", ".join(PRICE_MATCHES),
        )
    if otype != "limit":
        raise _refuse(
            "BAD_PRICE_MATCH", f"{method}: priceMatch {raw} refused: it goes on a limit order only"
        )
    if price is not None:
        raise _refuse(
            "BAD_PRICE_MATCH",
            f"{method}: priceMatch {raw} refused with a price ({_shown(price)}): the book sets "
            "the price; send one or the other",
        )
    return raw


def _position_side(method: str, params: Mapping[str, Any], hedged: bool | None) -> str | None:
    """positionSide as sent, judged against the account's mode (Binance New Order): LONG or
    SHORT, and no reduceOnly, in hedge mode; BOTH or nothing in one-way mode. A mismatch is
    refused here with POSITION_SIDE (Binance would answer -4061 or -1106)."""
    raw = params.get("positionSide")
    if raw is not None and raw not in (*HEDGE_SIDES, ONE_WAY):  # Binance's enum: upper case
        raise _refuse(
            "POSITION_SIDE",
            f"{method}: params['positionSide'] {_shown(raw)} refused: expected LONG or SHORT "
            "(hedge mode) or BOTH (one-way mode)",
        )
    side = raw
    if hedged:
        if side not in HEDGE_SIDES:
            raise _refuse(
                "POSITION_SIDE",
                f"{method}: the account is in hedge mode (dualSidePosition): an order must "
                f"name positionSide LONG or SHORT, got {_shown(raw)}",
            )
        if "reduceOnly" in params:
            raise _refuse(
                "POSITION_SIDE",
                f"{method}: reduceOnly is not sent in hedge mode: close a LONG with a sell "
                "positionSide LONG, a SHORT with a buy positionSide SHORT",
            )
    elif side in HEDGE_SIDES:
        raise _refuse(
            "POSITION_SIDE",
            f"{method}: positionSide {side} refused: the account is "
            + ("in one-way mode" if hedged is False else "not known to be in hedge mode")
            + " (dualSidePosition false); send BOTH or no positionSide",
        )
    return side


def _good_till(method: str, tif: Any, value: Any) -> int | None:
    """goodTillDate goes with time in force GTD, and GTD needs it: a whole number of
    milliseconds before Binance's ceiling. (That it lies > 600 s ahead is the exchange's
    call, by its own clock: -5040.)"""
    gtd = isinstance(tif, str) and tif.upper() == "GTD"
    if value is None:
        if gtd:
            raise _refuse("BAD_PARAM", f"{method}: time in force GTD needs a goodTillDate")
        return None
    if not gtd:
        raise _refuse(
            "BAD_PARAM", f"{method}: params['goodTillDate'] refused: it goes with time in "
            f"force GTD, not {_shown(tif)}",
        )  # fmt: skip
    ms = plain_number(value)
    if ms is None or ms != int(ms) or not 0 < ms < GTD_MAX_MS:
        raise _refuse(
            "BAD_PARAM", f"{method}: params['goodTillDate'] {_shown(value)} refused: expected "
            "epoch milliseconds before 9999-12-31",
        )  # fmt: skip
    return int(ms)


def _agrees(wire: WireOrder, spec: Any) -> None:
    """A request built from an OrderSpec must send what the spec says: a guard that judged
    the spec must not see a different order leave (and a layer that rewrote the flags to
    match the spec would send an order the earlier guards never judged)."""
    for name, sent, meant in (
        ("symbol", wire.symbol, spec.symbol),
        ("side", wire.side, str(spec.side).lower()),
        ("type", wire.type, str(spec.type).lower()),
        ("amount", wire.amount, spec.amount),
        ("price", wire.price, spec.price if wire.type == "limit" else None),
        ("reduceOnly", wire.reduce_only, bool(spec.reduce_only)),
        ("postOnly", wire.post_only, bool(spec.post_only)),
        ("positionSide", leg(wire.position_side), leg(spec.position_side)),
        ("priceMatch", wire.price_match, spec.price_match or None),
        (
            "goodTillDate",
            wire.good_till_ms,
            None if spec.good_till is None else good_till_ms(spec.good_till),
        ),
    ):
        if sent != meant:
            raise _refuse(
                "BAD_PARAM",
                f"create_order: the request would send {name} {_shown(sent)} but its order "
                f"spec says {_shown(meant)}; refused rather than judge one and send the other",
            )


def wire_leverage(request: Request) -> tuple[float, str]:
    """(leverage, symbol) of a set_leverage call as sent; OrderRefused otherwise."""
    bound, params = _bound(request, ("leverage", "symbol"))
    _check_params(request.method, params, ())
    symbol = bound.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise _refuse("BAD_SYMBOL", f"set_leverage: symbol {_shown(symbol)} refused")
    leverage = _positive(bound.get("leverage"), "BAD_LEVERAGE", "leverage", request.method)
    if leverage < 1 or leverage > MAX_LEVERAGE:
        raise _refuse(
            "BAD_LEVERAGE",
            f"set_leverage: leverage {leverage:g} refused: expected 1 to {MAX_LEVERAGE:g}",
        )
    return leverage, symbol


def wire_margin_mode(request: Request) -> tuple[str, str]:
    """(margin mode, symbol) of a set_margin_mode call as sent; OrderRefused otherwise."""
    bound, params = _bound(request, ("marginMode", "symbol"))
    _check_params(request.method, params, ())
    mode, symbol = bound.get("marginMode"), bound.get("symbol")
    if not isinstance(symbol, str) or not symbol:
        raise _refuse("BAD_SYMBOL", f"set_margin_mode: symbol {_shown(symbol)} refused")
    if not isinstance(mode, str) or mode.lower() not in MARGIN_MODES:
        raise _refuse(
            "BAD_PARAM", f"set_margin_mode: mode {_shown(mode)} refused: expected cross or isolated"
        )
    return mode.lower(), symbol
