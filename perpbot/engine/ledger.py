"""What the run did: its orders, fills, fees, funding and PnL.

The ledger only counts this run's own orders (tracked by client order id), so a shared
account's other activity never pollutes a run's summary. The order a conditional order of
the run places when it fires is the run's own too: it carries the conditional order's client
id, and is tracked once the user stream or a REST lookup names it (``stands``,
``triggered``).

It is also where the strategy's order and fill events come from: whichever source feeds the
ledger (the REST reconcile today, a stream tomorrow), each change of an order's state and
each new fill is told to ``listeners`` once, as plain data (perpbot.engine.feed).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from perpbot.client.position_side import HEDGE_SIDES, leg_key
from perpbot.client.request import OrderSpec
from perpbot.client.validate import plain_number

FINAL = {"closed", "canceled", "cancelled", "expired", "rejected"}
# ccxt status -> (event status, reason code); "open" with more filled is a partial fill
TRANSITIONS = {
    "closed": ("filled", "ORDER_FILLED"),
    "canceled": ("cancelled", "ORDER_CANCELLED"),
    "expired": ("expired", "ORDER_EXPIRED"),
    "rejected": ("rejected", "ORDER_REJECTED"),
}
Listener = Callable[[dict[str, Any]], None]


@dataclass
class TrackedOrder:
    spec: OrderSpec
    order_id: str | None = None
    status: str = "open"
    filled: float = 0.0
    placed_at: float = field(default_factory=time.time)
    closed_at: float | None = None
    # the price the exchange answered with (a priceMatch order's: the book's level at entry)
    price: float | None = None


@dataclass
class Fill:
    ts: float
    symbol: str
    side: str
    price: float
    amount: float
    cost: float
    fee: float
    fee_currency: str | None
    maker: bool | None
    order_id: str | None
    client_order_id: str | None
    trade_id: str
    realized_pnl: float
    intent: str | None
    decided_price: float | None

    @property
    def slippage_bps(self) -> float | None:
        if not self.decided_price:
            return None
        sign = 1.0 if self.side == "buy" else -1.0
        return sign * (self.price - self.decided_price) / self.decided_price * 1e4

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["slippage_bps"] = self.slippage_bps
        return d


@dataclass(slots=True)
class OwnPosition:
    """A position built from this run's own fills only (average cost), for a run that shares
    its (account, symbol) with other bots (``[strategy] share_symbols``): the exchange's
    position and ``realizedPnl`` are the account's, not this bot's. On a hedge-mode account
    each side has its own book (``Ledger.book`` by ``leg_key``: SHORT amounts are < 0)."""

    amount: float = 0.0
    entry_price: float | None = None
    realized: float = 0.0

    def apply(self, side: str, price: float, amount: float) -> float:
        """Add a fill; returns the PnL it realized (against this book's average cost)."""
        signed = amount if side == "buy" else -amount
        pos, entry = self.amount, self.entry_price
        realized = 0.0
        if pos == 0 or (pos > 0) == (signed > 0) or entry is None:
            total = abs(pos) + amount
            self.entry_price = ((entry or price) * abs(pos) + price * amount) / total
            self.amount = pos + signed
            return 0.0
        closed = min(abs(pos), amount)
        realized = (price - entry) * closed * (1.0 if pos > 0 else -1.0)
        self.amount = pos + signed
        if abs(self.amount) < 1e-12:
            self.amount, self.entry_price = 0.0, None
        elif (self.amount > 0) != (pos > 0):  # flipped: the rest opened at this price
            self.entry_price = price
        self.realized += realized
        return realized


class Ledger:
    def __init__(self, *, own_book: bool = False) -> None:
        # own_book: positions and realized PnL from this run's fills (a shared symbol)
        self.own_book = own_book
        self.book: dict[str, OwnPosition] = {}  # by leg_key: symbol, or symbol|LONG/SHORT
        self.orders: dict[str, TrackedOrder] = {}
        self.by_order_id: dict[str, str] = {}
        self.rejected: Counter[str] = Counter()
        self.fills: list[Fill] = []
        self._trade_ids: set[str] = set()
        self.funding: float = 0.0
        self.last_trade_ms: dict[str, int] = {}
        self.listeners: list[Listener] = []
        # symbol -> this run's placements sent whose answer has not come: until it does, a
        # trade of an order the ledger cannot name may be one of them
        self.unanswered: Counter[str] = Counter()
        # client id -> the order a conditional order of this run places when it fires (its
        # client id: Binance's triggered order carries the algo order's clientAlgoId)
        self.conditional: dict[str, OrderSpec] = {}

    def _tell(self, event: dict[str, Any]) -> None:
        for listener in self.listeners:
            listener(event)

    def _order_event(
        self, tracked: TrackedOrder, status: str, code: str, sentence: str, raw: dict[str, Any]
    ) -> None:
        spec = tracked.spec
        order = dict(raw) if raw else {}
        order.setdefault("clientOrderId", spec.client_order_id)
        order.setdefault("symbol", spec.symbol)
        order.setdefault("side", spec.side)
        order.setdefault("type", spec.type)
        order.setdefault("amount", spec.amount)
        order.setdefault("price", tracked.price or spec.price)
        order["id"] = order.get("id") or tracked.order_id
        order["status"] = tracked.status
        order["filled"] = tracked.filled
        self._tell(
            {
                "type": "order",
                "status": status,
                "code": code,
                "sentence": sentence,
                "client_order_id": spec.client_order_id,
                "symbol": spec.symbol,
                "order": order,
            }
        )

    # -- orders -----------------------------------------------------------------------------
    def placed(
        self, spec: OrderSpec, order: dict[str, Any], *, adopted: bool = False
    ) -> TrackedOrder:
        """A new order of this run (``adopted``: an earlier run's, taken over at start)."""
        assert spec.client_order_id
        tracked = self._track(spec, order)
        what = self._what(tracked)
        if adopted:
            code = "ORDER_ADOPTED"
            sentence = f"{what} ({spec.client_order_id}), left open by an earlier run of this "
            sentence += "strategy, is now this run's own"
        else:
            code = "ORDER_ACCEPTED"
            sentence = f"the exchange accepted {what} ({spec.client_order_id})"
        self._order_event(tracked, "accepted", code, sentence, order)
        self.update(spec.client_order_id, order)
        return tracked

    def _track(self, spec: OrderSpec, order: dict[str, Any]) -> TrackedOrder:
        assert spec.client_order_id
        answered = plain_number((order or {}).get("price"))
        tracked = TrackedOrder(
            spec=spec,
            order_id=str(order.get("id")) if order and order.get("id") is not None else None,
            price=answered if answered else spec.price,
        )
        self.orders[spec.client_order_id] = tracked
        if tracked.order_id:
            self.by_order_id[tracked.order_id] = spec.client_order_id
        return tracked

    @staticmethod
    def _what(tracked: TrackedOrder) -> str:
        spec = tracked.spec
        at = f" @ {tracked.price:g}" if tracked.price else " at market"
        if spec.price_match:
            at += f" (priceMatch {spec.price_match})"
        return f"{spec.side} {spec.amount:g} {spec.symbol}{at}"

    # -- conditional orders that fired ------------------------------------------------------
    def stands(self, spec: OrderSpec) -> None:
        """A conditional order of this run stands on the exchange (perpbot.engine.
        conditional): ``spec`` is the order its trigger will place, under its client id."""
        assert spec.client_order_id
        self.conditional[spec.client_order_id] = spec

    def triggered(self, client_id: Any, order: dict[str, Any]) -> bool:
        """Whether ``order`` (ccxt-like: ``id``, and ``amount`` when known), of client id
        ``client_id``, is the order a conditional order of this run placed when it fired;
        if so the ledger tracks it from now on like any order of the run (its fills are
        the run's: ``add_trades``), told once (``ORDER_TRIGGERED``)."""
        spec = self.conditional.get(str(client_id)) if client_id else None
        oid = order.get("id")
        if spec is None or oid is None:
            return False
        if str(oid) in self.by_order_id:
            return True
        tracked = self.orders.get(str(client_id))
        if tracked is not None:  # known by its client id already: the order id is news
            tracked.order_id = str(oid)
            self.by_order_id[str(oid)] = str(client_id)
            return True
        amount = plain_number(order.get("amount"))
        if amount and not spec.amount:  # closePosition: the size it closed is known now
            spec = replace(spec, amount=amount)
        tracked = self._track(spec, {"id": oid})
        sentence = (
            f"the conditional order {client_id} fired: the exchange placed "
            f"{self._what(tracked)}, order {oid}"
        )
        self._order_event(tracked, "accepted", "ORDER_TRIGGERED", sentence, {"id": str(oid)})
        return True

    def update(self, client_id: str, order: dict[str, Any] | None) -> None:
        tracked = self.orders.get(client_id)
        if tracked is None or not order:
            return
        before_status, before_filled = tracked.status, tracked.filled
        status = order.get("status") or tracked.status
        status = "canceled" if status == "cancelled" else status
        # answers arrive out of order (the user stream may tell "closed" before the placement
        # answer says "open"): a final state is never undone, a fill never shrinks
        if before_status not in FINAL:
            tracked.status = status
        filled = order.get("filled")
        if filled is not None:
            tracked.filled = max(tracked.filled, float(filled))
        if tracked.status in FINAL and tracked.closed_at is None:
            tracked.closed_at = time.time()
        spec = tracked.spec
        of = f"{tracked.filled:g} of {spec.amount:g} {spec.symbol} ({client_id})"
        if tracked.status != before_status and tracked.status in TRANSITIONS:
            event, code = TRANSITIONS[tracked.status]
            sentence = {
                "filled": f"filled {of}",
                "cancelled": f"cancelled with {of} filled",
                "expired": f"expired with {of} filled (time in force, or gone from the exchange)",
                "rejected": f"the exchange rejected the order after accepting it ({of})",
            }[event]
            self._order_event(tracked, event, code, sentence, order)
        elif tracked.status == "open" and tracked.filled > before_filled:
            self._order_event(
                tracked, "partially_filled", "ORDER_PARTIALLY_FILLED",
                f"partially filled: {of}", order,
            )  # fmt: skip

    def reject(self, code: str, *, spec: OrderSpec | None = None, sentence: str = "") -> None:
        """An order refused before or by the exchange (``spec`` None: never named)."""
        self.rejected[code] += 1
        if spec is None:
            return
        self._tell(
            {
                "type": "order",
                "status": "rejected",
                "code": code,
                "sentence": sentence or code,
                "client_order_id": spec.client_order_id,
                "symbol": spec.symbol,
                "order": None,
            }
        )

    @contextmanager
    def awaiting_answer(self, symbol: str) -> Iterator[None]:
        """A placement on ``symbol`` is on its way (``unanswered``) while this is open."""
        self.unanswered[symbol] += 1
        try:
            yield
        finally:
            self.unanswered[symbol] -= 1

    def names_order(self, trade: dict[str, Any]) -> bool:
        """Whether ``trade`` (a ccxt trade) is of an order this run knows."""
        return trade.get("order") is not None and str(trade["order"]) in self.by_order_id

    def open_client_ids(self, symbol: str | None = None) -> list[str]:
        return [
            cid
            for cid, t in self.orders.items()
            if t.status == "open" and (symbol is None or t.spec.symbol == symbol)
        ]

    # -- fills ------------------------------------------------------------------------------
    def add_trades(self, symbol: str, trades: list[dict[str, Any]]) -> list[Fill]:
        """Record this run's new trades; returns the fills that were new."""
        new: list[Fill] = []
        for t in trades:
            tid = str(t.get("id"))
            if tid in self._trade_ids or not self.names_order(t):
                continue
            order_id = str(t["order"])
            self._trade_ids.add(tid)
            cid = self.by_order_id[order_id]
            spec = self.orders[cid].spec
            fee = t.get("fee") or {}
            info = t.get("info") or {}
            # a hedge-mode fill goes to its side's book (the order's positionSide)
            key = leg_key(symbol, spec.position_side)
            own = self.book.setdefault(key, OwnPosition()).apply(
                str(t.get("side")), float(t.get("price") or 0.0), float(t.get("amount") or 0.0)
            )
            # REST's userTrades say realizedPnl; the user stream's ORDER_TRADE_UPDATE "rp"
            said = info.get("realizedPnl", info.get("rp"))
            realized = own if self.own_book else float(said or 0.0)
            fill = Fill(
                ts=(t.get("timestamp") or 0) / 1000.0,
                symbol=symbol,
                side=str(t.get("side")),
                price=float(t.get("price") or 0.0),
                amount=float(t.get("amount") or 0.0),
                cost=float(t.get("cost") or 0.0),
                fee=float(fee.get("cost") or 0.0),
                fee_currency=fee.get("currency"),
                maker=(t.get("takerOrMaker") == "maker") if t.get("takerOrMaker") else None,
                order_id=order_id,
                client_order_id=cid,
                trade_id=tid,
                realized_pnl=realized,
                intent=spec.intent,
                decided_price=spec.decided_price,
            )
            self.fills.append(fill)
            new.append(fill)
            self._tell({"type": "fill", "fill": fill.to_dict()})
            ts_ms = int(t.get("timestamp") or 0)
            self.last_trade_ms[symbol] = max(self.last_trade_ms.get(symbol, 0), ts_ms)
        return new

    def flatten(self, symbol: str) -> None:
        """A shared run's own book on ``symbol`` after the exchange closed the account's
        position there (a liquidation, an ADL: perpbot.engine.unplaced): nothing is held any
        more. The PnL its own fills realized stays as booked."""
        for key in (leg_key(symbol, side) for side in (None, *HEDGE_SIDES)):
            book = self.book.get(key)
            if book is not None:
                book.amount, book.entry_price = 0.0, None

    # -- figures ----------------------------------------------------------------------------
    def counts(self) -> dict[str, int]:
        statuses = Counter(t.status for t in self.orders.values())
        filled = sum(1 for t in self.orders.values() if t.status == "closed")
        partial = sum(1 for t in self.orders.values() if t.status != "closed" and t.filled > 0)
        return {
            "placed": len(self.orders),
            "filled": filled,
            "partially_filled": partial,
            "cancelled": statuses.get("canceled", 0),
            "expired": statuses.get("expired", 0),
            "open": statuses.get("open", 0),
            "rejected": sum(self.rejected.values()),
        }

    @property
    def fees(self) -> float:
        return sum(f.fee for f in self.fills)

    @property
    def realized_pnl(self) -> float:
        return sum(f.realized_pnl for f in self.fills)

    @property
    def volume(self) -> float:
        return sum(f.cost for f in self.fills)
