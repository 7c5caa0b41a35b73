"""Conditional orders: stop-market, take-profit, trailing stop and ``closePosition``.

Since Dec 2025 Binance USD-M takes conditional orders only through its Algo Order API
(``POST /fapi/v1/algoOrder``; ``/fapi/v1/order`` answers -4120). ccxt routes
``create_order(..., params={"stopLossPrice": ...})`` there too, but its unified params are
the very ones the order boundary refuses on ``create_order`` (perpbot.client.validate: they
would change the order type behind the guards' back). So a conditional order is its own
request, ``fapiprivate_post_algoorder`` (ccxt's method for that endpoint, signed and
rate-limited like any other), with its own scope (``stop``), its own weight (perpbot.weights:
order count 1, weight 0), its risk judgement (perpbot.risk.stops) made here before it is sent
and again at every reconcile while it stands, and a Decision for every placement, refusal and
cancel. Client ids are this run's (perpbot.client.orders), sent as ``clientAlgoId``.

Hedge mode (docs/hedge-mode.md): every conditional order names ``position_side`` LONG or
SHORT and never sends reduceOnly (New Algo Order: positionSide "must be sent in Hedge Mode",
reduceOnly "cannot be sent in Hedge Mode"). A reduce-only one becomes a side close (SELL
LONG, BUY SHORT); a reduce-only one that would open its side is refused (POSITION_SIDE).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import ccxt

from perpbot.client.position_side import HEDGE_SIDES, closes, leg, leg_key
from perpbot.client.request import OrderSpec
from perpbot.engine.orders import exchange_message
from perpbot.engine.strategy import OrderRejected
from perpbot.errors import KillSwitchActive, PermissionDenied, RiskRejected
from perpbot.events import Decision
from perpbot.risk.stops import StopView, judge_at_trigger, judge_placement

if TYPE_CHECKING:
    from perpbot.config import RiskSection
    from perpbot.engine.orders import OrderManager
    from perpbot.engine.state import PositionSnapshot

Kind = Literal["stop_market", "take_profit_market", "stop", "take_profit", "trailing_stop"]
WIRE_TYPE: dict[str, str] = {
    "stop_market": "STOP_MARKET",
    "take_profit_market": "TAKE_PROFIT_MARKET",
    "stop": "STOP",
    "take_profit": "TAKE_PROFIT",
    "trailing_stop": "TRAILING_STOP_MARKET",
}
WORKING_TYPES = ("MARK_PRICE", "CONTRACT_PRICE")
OPEN_STATUSES = ("NEW",)


@dataclass(kw_only=True)
class ConditionalSpec:
    """A conditional order as the strategy (or the protect keeper) means it."""

    symbol: str
    side: Literal["buy", "sell"]
    kind: Kind
    amount: float | None = None  # None with close_position
    trigger_price: float | None = None  # every kind but trailing_stop
    price: float | None = None  # the limit price of "stop" / "take_profit"
    callback_rate: float | None = None  # trailing_stop: percent, 0.1 .. 10
    activation_price: float | None = None  # trailing_stop: optional
    close_position: bool = False
    reduce_only: bool = False
    working_type: str = "MARK_PRICE"
    client_order_id: str | None = None
    intent: str | None = None
    position_side: str | None = None  # LONG | SHORT on a hedge-mode account

    @property
    def wire_type(self) -> str:
        return WIRE_TYPE[self.kind]

    def reduces_only(self) -> bool:
        return self.close_position or self.reduce_only or closes(self.side, self.position_side)


def side_refusal(spec: ConditionalSpec, hedged: bool) -> str | None:
    """Why ``spec`` cannot be sent on an account in this mode (None: it can). In hedge mode
    a reduce-only spec that closes its side is turned into that side close here."""
    if spec.position_side not in (None, "BOTH", *HEDGE_SIDES):
        return f"position_side {spec.position_side!r}: expected LONG or SHORT (upper case)"
    side = leg(spec.position_side)
    if not hedged:
        if side is not None:
            return (f"position_side {side} on a one-way account: conditional orders there "
                    "act on the one net position (send no position_side)")  # fmt: skip
        return None
    if side is None:
        return (f"a hedge-mode account needs position_side LONG or SHORT on the "
                f"{spec.wire_type} ({spec.symbol})")  # fmt: skip
    if spec.reduce_only:
        if not closes(spec.side, side):
            return (f"a reduce-only {spec.side} {spec.wire_type} cannot act on the {side} side "
                    f"in hedge mode: it would open it (a close is "
                    f"{'sell' if side == 'LONG' else 'buy'} {side})")  # fmt: skip
        spec.reduce_only = False  # hedge mode: the side close is the reduce-only form
    return None


def view_of(spec: ConditionalSpec) -> StopView:
    return StopView(
        symbol=spec.symbol, side=spec.side, kind=spec.kind, amount=spec.amount,
        trigger_price=spec.trigger_price, reduces_only=spec.reduces_only(),
    )  # fmt: skip


def _bad(code: str, sentence: str) -> OrderRejected:
    return OrderRejected(code, sentence)


def _positive(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e300


def validate(spec: ConditionalSpec) -> None:
    """Refuse a spec that cannot be sent as meant (OrderRejected with a code)."""
    if spec.kind not in WIRE_TYPE:
        raise _bad("BAD_ORDER_TYPE", f"conditional kind {spec.kind!r}: expected one of "
                   + ", ".join(WIRE_TYPE))  # fmt: skip
    if spec.side not in ("buy", "sell"):
        raise _bad("BAD_SIDE", f"side {spec.side!r}: expected buy or sell")
    if spec.working_type not in WORKING_TYPES:
        raise _bad("BAD_PARAM", f"working_type {spec.working_type!r}: expected MARK_PRICE "
                   "or CONTRACT_PRICE")  # fmt: skip
    if spec.close_position:
        if spec.kind not in ("stop_market", "take_profit_market"):
            raise _bad("BAD_PARAM", "close_position works with stop_market and "
                       f"take_profit_market only, not {spec.kind}")  # fmt: skip
        if spec.amount is not None:
            raise _bad("BAD_AMOUNT", "close_position closes the whole position: give no amount")
    elif not _positive(spec.amount):
        raise _bad("BAD_AMOUNT", f"amount must be a number > 0, got {spec.amount!r}")
    if spec.kind == "trailing_stop":
        rate = spec.callback_rate
        if not _positive(rate) or not 0.1 <= float(rate or 0) <= 10.0:
            raise _bad("BAD_PARAM", f"callback_rate {rate!r}: expected 0.1 to 10 (percent)")
        if spec.activation_price is not None and not _positive(spec.activation_price):
            raise _bad("BAD_PRICE", f"activation_price {spec.activation_price!r} refused")
    elif not _positive(spec.trigger_price):
        raise _bad("BAD_PRICE", f"trigger_price must be a number > 0, got {spec.trigger_price!r}")
    if spec.kind in ("stop", "take_profit") and not _positive(spec.price):
        raise _bad("BAD_PRICE", f"a {spec.kind} order needs a limit price > 0")


def wire_params(spec: ConditionalSpec, market_id: str, exchange: Any) -> dict[str, str]:
    """The POST /fapi/v1/algoOrder fields (strings, rounded to the market's precision)."""
    p: dict[str, str] = {
        "algoType": "CONDITIONAL",
        "symbol": market_id,
        "side": spec.side.upper(),
        "type": spec.wire_type,
        "workingType": spec.working_type,
        "clientAlgoId": str(spec.client_order_id),
    }
    unified = spec.symbol
    side = leg(spec.position_side)
    if side is not None:
        p["positionSide"] = side
    if spec.close_position:
        p["closePosition"] = "true"
    else:
        p["quantity"] = exchange.amount_to_precision(unified, spec.amount)
        if spec.reduce_only and side is None:
            p["reduceOnly"] = "true"
    if spec.trigger_price is not None and spec.kind != "trailing_stop":
        p["triggerPrice"] = exchange.price_to_precision(unified, spec.trigger_price)
    if spec.price is not None and spec.kind in ("stop", "take_profit"):
        p["price"] = exchange.price_to_precision(unified, spec.price)
        p["timeInForce"] = "GTC"
    if spec.kind == "trailing_stop":
        p["callbackRate"] = f"{float(spec.callback_rate or 0):.1f}"
        if spec.activation_price is not None:
            p["activatePrice"] = exchange.price_to_precision(unified, spec.activation_price)
    return p


def child_spec(spec: ConditionalSpec) -> OrderSpec:
    """The order ``spec`` places in the matching engine when it fires, under its client id
    (Binance's triggered order carries the algo order's ``clientAlgoId``): a MARKET order for
    the ``*_market`` kinds and the trailing stop, a LIMIT at ``price`` for stop/take_profit.
    A closePosition order's size is the position's when it fires (0 until then)."""
    market = spec.kind in ("stop_market", "take_profit_market", "trailing_stop")
    return OrderSpec(
        symbol=spec.symbol,
        side=spec.side,
        type="market" if market else "limit",
        amount=float(spec.amount or 0.0),
        price=None if market else spec.price,
        reduce_only=spec.close_position or spec.reduce_only,
        client_order_id=spec.client_order_id,
        intent=spec.intent,
        decided_price=spec.trigger_price,  # a fill's slippage: against the trigger
        position_side=leg(spec.position_side),
    )


def adopted_spec(order: dict[str, Any]) -> ConditionalSpec | None:
    """What a listed conditional order (``parse_algo``) an earlier run placed means, for the
    run that adopts it (None: a type perpbot does not place)."""
    wire = str(order.get("type") or "").upper()
    kind = next((k for k, w in WIRE_TYPE.items() if w == wire), None)
    side = order.get("side")
    if kind is None or side not in ("buy", "sell"):
        return None
    return ConditionalSpec(
        symbol=str(order.get("symbol")),
        side=side,
        kind=kind,  # type: ignore[arg-type]
        amount=order.get("amount"),
        trigger_price=order.get("triggerPrice"),
        price=order.get("price"),
        close_position=bool(order.get("closePosition")),
        reduce_only=bool(order.get("reduceOnly")),
        client_order_id=str(order.get("clientOrderId")),
        intent="adopted from an earlier run",
        position_side=order.get("positionSide")
        if order.get("positionSide") in HEDGE_SIDES
        else None,
    )


def parse_algo(raw: dict[str, Any], symbol: str) -> dict[str, Any]:
    """An algo order answer as a ccxt-like dict (``id``, ``clientOrderId``, ``status``...)."""

    def num(key: str) -> float | None:
        try:
            v = float(raw.get(key) or 0)
        except (TypeError, ValueError):
            return None
        return v or None

    status = str(raw.get("algoStatus") or "")
    return {
        "id": str(raw.get("algoId")),
        "clientOrderId": raw.get("clientAlgoId"),
        "symbol": symbol,
        "type": str(raw.get("orderType") or "").lower(),
        "side": str(raw.get("side") or "").lower(),
        "amount": num("quantity"),
        "triggerPrice": num("triggerPrice"),
        "price": num("price"),
        "closePosition": raw.get("closePosition") in (True, "true"),
        "reduceOnly": raw.get("reduceOnly") in (True, "true"),
        "positionSide": raw.get("positionSide"),
        "status": "open" if status in OPEN_STATUSES else status.lower(),
        "conditional": True,
        "info": raw,
    }


@dataclass(kw_only=True)
class ConditionalOrders:
    """The run's conditional orders, sent through its guarded client."""

    orders: OrderManager
    risk: RiskSection | None = None
    placed: dict[str, ConditionalSpec] = field(default_factory=dict)  # by client id
    # an earlier run's orders taken over at the start (``adopt``), not yet kept or cancelled
    # by the [protect] keeper
    inherited: set[str] = field(default_factory=set)

    def _decide(self, action: str, code: str, sentence: str, spec: ConditionalSpec) -> None:
        data = {"symbol": spec.symbol, "side": spec.side, "type": spec.wire_type,
                "client_order_id": spec.client_order_id, "trigger_price": spec.trigger_price,
                "close_position": spec.close_position,
                "position_side": spec.position_side}  # fmt: skip
        self.orders.bus.publish(Decision("stops", action, code, sentence, data))

    async def place(
        self, spec: ConditionalSpec, *, position: PositionSnapshot | None, mark: float | None
    ) -> dict[str, Any]:
        """Judge and send one conditional order; refusals become OrderRejected."""
        validate(spec)
        sentence = side_refusal(spec, self.orders.account.hedged)
        if sentence is not None:
            self._decide("reject", "POSITION_SIDE", sentence, spec)
            raise OrderRejected("POSITION_SIDE", sentence)
        refusal = judge_placement(view_of(spec), position, mark, self.risk)
        if refusal is not None:
            self._decide("reject", refusal[0], refusal[1], spec)
            raise OrderRejected(*refusal)
        if not spec.client_order_id:
            spec.client_order_id = self.orders.next_client_id()
        client = self.orders.client
        market_id = client.market(spec.symbol)["id"]
        params = wire_params(spec, market_id, client.exchange)
        try:
            raw = await client.call(
                "fapiprivate_post_algoorder", params, symbol=spec.symbol, intent=spec.intent
            )
        except (RiskRejected, KillSwitchActive, PermissionDenied) as exc:
            code = exc.code or "REFUSED"
            self._decide("reject", code, exc.message, spec)
            raise OrderRejected(code, exc.message) from None
        except Exception as exc:
            sentence = f"the exchange refused the {spec.wire_type}: {exchange_message(exc)}"
            self._decide("reject", f"EXCHANGE_{type(exc).__name__}", sentence, spec)
            raise OrderRejected(f"EXCHANGE_{type(exc).__name__}", sentence) from None
        order = parse_algo(raw if isinstance(raw, dict) else {}, spec.symbol)
        self.placed[spec.client_order_id] = spec
        self.orders.ledger.stands(child_spec(spec))  # its fills, once it fires, are the run's
        what = "the whole position" if spec.close_position else f"{spec.amount:g}"
        at = (f"trigger {params['triggerPrice']}" if "triggerPrice" in params
              else f"callback {params.get('callbackRate')} %")  # fmt: skip
        self._decide(
            "place",
            "STOP_PLACED",
            f"{spec.wire_type} {spec.side} {what} {spec.symbol} at {at} "
            f"({spec.client_order_id}) stands on the exchange",
            spec,
        )
        return order

    async def standing(self, symbol: str) -> list[dict[str, Any]]:
        """Every conditional order of the account standing on ``symbol``, whoever placed it."""
        client = self.orders.client
        market_id = client.market(symbol)["id"]
        raw = await client.call("fapiprivate_get_openalgoorders", {"symbol": market_id},
                                symbol=symbol)  # fmt: skip
        return [parse_algo(r, symbol) for r in raw or [] if isinstance(r, dict)]

    async def open(self, symbol: str) -> list[dict[str, Any]]:
        """This run's conditional orders standing on ``symbol`` (listed at the exchange),
        an earlier run's it took over (``adopt``) among them."""
        return [o for o in await self.standing(symbol) if self.orders.is_ours(o)]

    def adopt(self, order: dict[str, Any]) -> None:
        """Take over a conditional order an earlier run of this strategy left standing (the
        start-up sweep, perpbot.kill.sweep): from now on ``open`` lists it as this run's and
        the ``[protect]`` keeper may keep it as a position's stop (perpbot.protect.keeper)."""
        cid = str(order.get("clientOrderId"))
        self.orders.adopted.add(cid)
        self.inherited.add(cid)
        spec = adopted_spec(order)
        if spec is not None:  # its fills, once it fires, are this run's too
            self.orders.ledger.stands(child_spec(spec))

    async def cancel(self, order: dict[str, Any] | str, symbol: str) -> dict[str, Any] | None:
        """Cancel one conditional order (order dict, or this run's client id)."""
        cid = order.get("clientOrderId") if isinstance(order, dict) else order
        client = self.orders.client
        params = {"symbol": client.market(symbol)["id"], "clientAlgoId": str(cid)}
        try:
            result = await client.call("fapiprivate_delete_algoorder", params, symbol=symbol)
        except ccxt.OrderNotFound:
            self.placed.pop(str(cid), None)
            return None  # already triggered, expired or cancelled
        self.placed.pop(str(cid), None)
        self.orders.bus.publish(
            Decision(
                "stops",
                "cancel",
                "STOP_CANCELLED",
                f"conditional order {cid} on {symbol} cancelled",
                {"symbol": symbol, "client_order_id": cid},
            )
        )
        return result if isinstance(result, dict) else None

    async def rejudge(
        self, positions: dict[str, PositionSnapshot], marks: dict[str, float]
    ) -> list[str]:
        """Judge every standing opening stop as if it fired now; cancel the ones the risk
        limits would refuse (perpbot.risk.stops.judge_at_trigger). Returns their ids.
        ``positions`` holds hedge-mode sides by ``leg_key`` too ("SYMBOL|LONG")."""
        cancelled: list[str] = []
        for cid, spec in list(self.placed.items()):
            held = positions.get(leg_key(spec.symbol, spec.position_side))
            refusal = judge_at_trigger(view_of(spec), held, marks.get(spec.symbol), self.risk)
            if refusal is None:
                continue
            self._decide("refuse", refusal[0], refusal[1], spec)
            await self.cancel(cid, spec.symbol)
            cancelled.append(cid)
        return cancelled

    async def forget_gone(self, symbol: str) -> list[dict[str, Any]]:
        """List this run's standing orders on ``symbol`` and forget the ones gone
        (triggered, expired, cancelled elsewhere)."""
        standing = await self.open(symbol)
        ids = {o.get("clientOrderId") for o in standing}
        for cid, spec in list(self.placed.items()):
            if spec.symbol == symbol and cid not in ids:
                del self.placed[cid]
        return standing
