"""Order management for a run: place, cancel and map refusals, always by this run's client ids.

Every order the run places carries a client id derived from (run, strategy, sequence)
(perpbot.client.orders). "Cancel all" means all of *this run's* orders: they are listed at
the exchange and cancelled one by one by client id, never with the account-wide
``DELETE allOpenOrders`` (a trader's manual orders and other bots' stay). The account-wide
cancel exists only as a kill-switch level (perpbot.kill).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, NoReturn

import ccxt

from perpbot.client.account import AccountView
from perpbot.client.guarded import GuardedClient
from perpbot.client.idempotency import exchange_code
from perpbot.client.orders import client_order_id, is_ours
from perpbot.client.position_side import leg
from perpbot.client.request import OrderSpec, reducing_risk
from perpbot.client.transport import parse_error_body
from perpbot.client.validate import plain_number
from perpbot.engine.ledger import Ledger
from perpbot.engine.strategy import OrderRejected
from perpbot.engine.unsettled import UnsettledFills
from perpbot.errors import KillSwitchActive, RiskRejected, RuntimeFailure
from perpbot.events import Decision, EventBus

FIRST_PAUSE_S, MAX_PAUSE_S = 0.1, 1.0


# Binance refusals with a meaning of their own: (code, what a trader reads before the
# exchange's message); any other refusal is EXCHANGE_<ccxt class>
NAMED_REFUSALS: dict[int, tuple[str, str]] = {
    -5022: (
        "EXCHANGE_POST_ONLY_REJECTED",
        "post-only {order} would have taken liquidity (the book is at or through its "
        "price), so the exchange rejected it (-5022) and did not record it; it was not sent "
        "again",
    ),
    -4118: (
        "EXCHANGE_REDUCE_ONLY_HELD",
        "reduce-only {order} refused (-4118): the account's open reduce-only orders on that "
        "side plus this one exceed the position; cancel or shrink one of them first",
    ),
}


def refusal_of(exc: Exception, spec: OrderSpec) -> tuple[str, str]:
    """(reason code, sentence) for ``spec``'s order, which the exchange refused."""
    named = NAMED_REFUSALS.get(exchange_code(exc) or 0)
    message = exchange_message(exc)
    if named is None:
        return f"EXCHANGE_{type(exc).__name__}", f"the exchange refused the order: {message}"
    at = f" at {spec.price:g}" if isinstance(spec.price, int | float) else ""
    order = f"{spec.side} {spec.amount:g} {spec.symbol}{at} ({spec.client_order_id})"
    return named[0], f"{named[1].format(order=order)}: {message}"


def exchange_message(exc: Exception) -> str:
    body = parse_error_body(str(exc))
    if body and "msg" in body:
        return f"{body.get('msg')} (code {body.get('code')})"
    return type(exc).__name__


def describe_order(order: dict[str, Any]) -> str:
    """``buy 0.002 @ 50000 (pb-…-3)``: enough to find the order in the exchange's UI."""
    price = order.get("price")
    at = f" @ {price:g}" if isinstance(price, int | float) else ""
    amount = order.get("amount")
    size = f" {amount:g}" if isinstance(amount, int | float) else ""
    return f"{order.get('side') or '?'}{size}{at} ({order.get('clientOrderId') or order.get('id')})"


@dataclass(slots=True, kw_only=True)
class OrderManager:
    client: GuardedClient
    ledger: Ledger
    account: AccountView
    bus: EventBus
    run_id: str
    strategy: str
    symbols: list[str]
    sequence: int = 0  # the next client-id sequence number of this run
    inflight: int = 0  # strategy calls in flight (the stop lets them land)
    adopted: set[str] = field(default_factory=set)  # an earlier run's orders, taken over
    closed: bool = False  # the stop is cancelling: no new order may leave (``wire_look``)
    # fills answers reported that the position view may not include yet (the run settles
    # the view before it places the next order: perpbot.engine.unsettled)
    unsettled: UnsettledFills = field(default_factory=UnsettledFills)

    def is_ours(self, order: dict[str, Any]) -> bool:
        cid = order.get("clientOrderId")
        return is_ours(cid, self.run_id, self.strategy) or cid in self.adopted

    def wire_look(self, record: Any, request: Any) -> None:
        """Transport hook, the last look before a request leaves: once the stop cancels
        (``closed``), a create still pending (a resend after an unknown outcome, a backoff
        that outlived the stop's grace for calls in flight) is not sent: it would land after
        the stop confirmed nothing of this run open, and after the countdown was disarmed."""
        if self.closed and request is not None and request.method_class == "order":
            raise RuntimeFailure(
                f"not sent: {request.describe()}: the run is stopping (its orders are being "
                "cancelled and the dead-man countdown released)",
                code="ENGINE_STOPPING",
            )

    @property
    def has_orders(self) -> bool:
        """Whether this run placed or adopted any order (else the stop has nothing to do)."""
        return self.sequence > 0 or bool(self.adopted)

    def adopt(self, order: dict[str, Any]) -> None:
        """Take over an order an earlier run of this strategy left open (``[strategy]
        leftover_orders = "adopt"``): from now on it is this run's, in the ledger, the
        strategy's open orders, "cancel all" and the stop's cancel."""
        cid = str(order.get("clientOrderId"))
        price = plain_number(order.get("price"))
        spec = OrderSpec(
            symbol=str(order.get("symbol")),
            side="sell" if order.get("side") == "sell" else "buy",
            type="market" if order.get("type") == "market" else "limit",
            amount=float(plain_number(order.get("amount")) or 0.0),
            price=price if price else None,
            post_only=bool(order.get("postOnly")),
            reduce_only=bool(order.get("reduceOnly")),
            time_in_force=order.get("timeInForce"),
            client_order_id=cid,
            intent="adopted",
            position_side=leg((order.get("info") or {}).get("positionSide")),
        )
        self.adopted.add(cid)
        self.ledger.placed(spec, order, adopted=True)
        self.account.order_placed(order)

    def next_client_id(self) -> str:
        cid = client_order_id(self.run_id, self.strategy, self.sequence)
        self.sequence += 1
        return cid

    async def guarded(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Count a strategy call in flight (the stop lets in-flight calls land first)."""
        self.inflight += 1
        try:
            return await coro
        finally:
            self.inflight -= 1

    async def place(self, spec: OrderSpec) -> dict[str, Any]:
        """Place an order for the strategy; refusals become OrderRejected."""
        amount = plain_number(spec.amount)  # a string, NaN or inf is no amount
        if amount is None or amount <= 0:
            sentence = f"order amount must be a number > 0, got {spec.amount!r}"
            self.ledger.reject("BAD_AMOUNT", spec=spec, sentence=sentence)
            raise OrderRejected("BAD_AMOUNT", sentence)
        price = plain_number(spec.price)
        if spec.type == "limit" and (price is None or price <= 0) and not spec.price_match:
            sentence = f"limit price must be a number > 0, got {spec.price!r}"
            self.ledger.reject("BAD_PRICE", spec=spec, sentence=sentence)
            raise OrderRejected("BAD_PRICE", sentence)
        if not spec.client_order_id:
            spec.client_order_id = self.next_client_id()
        try:
            with self.ledger.awaiting_answer(spec.symbol):  # (a REST read of fills meanwhile)
                order = await self.client.create_order(spec)
        except (RiskRejected, KillSwitchActive) as exc:  # refused before it left: the
            # strategy may catch it (a halt goes on)
            self.ledger.reject(exc.code or "RISK", spec=spec, sentence=exc.message)
            raise OrderRejected(exc.code or "RISK", exc.message) from None
        except (
            ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadRequest, ccxt.OperationRejected
        ) as exc:  # fmt: skip
            self.refuse(spec, *refusal_of(exc, spec), layer="exchange")
        self.ledger.placed(spec, order)
        self.account.order_placed(order)
        self.unsettled.note(spec.client_order_id, order)
        return order

    def refuse(self, spec: OrderSpec, code: str, sentence: str, layer: str = "engine") -> NoReturn:
        """Refuse ``spec`` (by the engine before it is sent, or by the exchange): recorded,
        said (a ``reject`` decision of ``layer``), and raised to the strategy without the
        error that led to it (its sentence says what the strategy needs)."""
        self.ledger.reject(code, spec=spec, sentence=sentence)
        data = {"symbol": spec.symbol, "client_order_id": spec.client_order_id}
        self.bus.publish(Decision(layer, "reject", code, sentence, data))
        raise OrderRejected(code, sentence) from None

    async def cancel(self, order: dict[str, Any] | str, symbol: str | None) -> Any:
        """Cancel by order dict, exchange order id, or this run's client order id."""
        if isinstance(order, dict):
            cid = order.get("clientOrderId")
            oid = order.get("id")
            symbol = symbol or order.get("symbol")
        elif order in self.ledger.orders:
            cid, oid = order, self.ledger.orders[order].order_id
            symbol = symbol or self.ledger.orders[order].spec.symbol
        else:
            cid, oid = None, str(order)
        if symbol is None:
            raise OrderRejected("BAD_CANCEL", "cancel needs the order's symbol")
        try:
            result = await self.client.cancel_order(oid, symbol, client_order_id=cid)
        except ccxt.OrderNotFound:
            result = None
        if cid:
            self.ledger.update(cid, result)
            self.unsettled.note(cid, result)
        self.account.order_gone(cid, oid)
        return result

    async def cancel_all(self, symbol: str) -> None:
        """Cancel this run's open orders on ``symbol`` (by client id; others' stay). The next
        reconcile learns each final state (an order may have filled just before)."""
        listed = await self.client.fetch_open_orders(symbol)
        ours = [o for o in listed if self.is_ours(o)]
        await asyncio.gather(*(self.cancel(o, symbol) for o in ours))

    async def fetch_own_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for s in [symbol] if symbol else self.symbols:
            for o in await self.client.fetch_open_orders(s):
                if o.get("clientOrderId") in self.ledger.orders:
                    out.append(o)
        return out

    # -- the stop sequence's two order steps ------------------------------------------------
    async def cancel_own_until(self, deadline: float) -> list[str]:
        """Cancel every open order of this run, retrying through 5xx, timeouts and dropped
        connections until a listing shows none of them or ``deadline`` (monotonic) passes.

        Orders are recognised by client id (not only the ledger), so an order whose create
        was still being resolved when the run stopped is cancelled too. Returns the problems
        met on symbols that could not be emptied (one line each).
        """
        if not self.has_orders:
            return []
        problems: list[str] = []

        async def one_symbol(symbol: str) -> None:
            pause = FIRST_PAUSE_S
            last = ""
            while True:
                try:
                    ours = [
                        o for o in await self.client.fetch_open_orders(symbol) if self.is_ours(o)
                    ]
                except Exception as exc:
                    last = f"listing open orders on {symbol}: {type(exc).__name__}"
                else:
                    if not ours:
                        return
                    results = await asyncio.gather(
                        *(self.cancel(o, symbol) for o in ours), return_exceptions=True
                    )
                    failed = [r for r in results if isinstance(r, BaseException)]
                    if failed:
                        last = f"cancelling on {symbol}: {type(failed[-1]).__name__}"
                if time.monotonic() + pause > deadline:
                    problems.append(last or f"{symbol}: orders still open at the deadline")
                    return
                await asyncio.sleep(pause)
                pause = min(pause * 2.0, MAX_PAUSE_S)

        with reducing_risk():  # the listings too draw on the rate budget's reserve
            await asyncio.gather(*(one_symbol(s) for s in self.symbols))
        return problems

    async def left_open(self) -> dict[str, list[dict[str, Any]]]:
        """Confirm at the exchange: this run's orders it still lists, per symbol.

        A symbol whose listing fails counts as not confirmed: the orders the ledger knows
        open there are reported as left (the safe answer: the countdown stays armed).
        """
        if not self.has_orders:
            return {}

        async def one_symbol(symbol: str) -> list[dict[str, Any]]:
            try:
                listed = await self.client.fetch_open_orders(symbol)
            except Exception:
                known = [
                    {"clientOrderId": cid, "symbol": symbol, **self._known(cid)}
                    for cid in self.ledger.open_client_ids(symbol)
                ]
                return known or [{"clientOrderId": "(unknown: listing failed)"}]
            return [o for o in listed if self.is_ours(o)]

        with reducing_risk():  # confirming the stop: the rate budget's reserve
            found = await asyncio.gather(*(one_symbol(s) for s in self.symbols))
        return {s: orders for s, orders in zip(self.symbols, found, strict=True) if orders}

    def _known(self, cid: str) -> dict[str, Any]:
        tracked = self.ledger.orders[cid]
        return {
            "id": tracked.order_id,
            "side": tracked.spec.side,
            "price": tracked.price,
            "amount": tracked.spec.amount,
        }
