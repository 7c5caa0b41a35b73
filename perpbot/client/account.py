"""AccountView: the bot's latest knowledge of its positions and open orders.

Guards that judge an order against the account (a reduce-only grant, the risk layer's
reduce-only and exposure checks) read it instead of making requests of their own. The
runner refreshes it at every reconcile and records each order it places or cancels in
between; a command without a runner calls ``refresh`` itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perpbot.client.position_side import closes, leg, leg_key

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient


@dataclass
class OpenOrder:
    client_order_id: str | None
    order_id: str | None
    symbol: str
    side: str  # "buy" | "sell"
    type: str
    amount: float
    remaining: float
    price: float | None
    reduce_only: bool
    post_only: bool = False
    seen_at: float = 0.0  # when this process last learnt of it (0: from an exchange list)
    inflight: bool = False  # sent, no answer yet (a reservation; see AccountView.reserve)
    position_side: str | None = None  # LONG | SHORT in hedge mode

    @property
    def closes(self) -> bool:
        """Reduce-only, or a hedge-mode close (SELL LONG, BUY SHORT)."""
        return self.reduce_only or closes(self.side, self.position_side)

    @property
    def key(self) -> str:
        """The position its reduce-only accounting goes by (``leg_key``)."""
        return leg_key(self.symbol, self.position_side)

    @classmethod
    def from_ccxt(cls, o: dict[str, Any]) -> OpenOrder:
        amount = float(o.get("amount") or 0.0)
        remaining = o.get("remaining")
        return cls(
            client_order_id=o.get("clientOrderId"),
            order_id=str(o.get("id")) if o.get("id") is not None else None,
            symbol=str(o.get("symbol")),
            side=str(o.get("side")),
            type=str(o.get("type")),
            amount=amount,
            remaining=float(remaining) if remaining is not None else amount,
            price=float(o["price"]) if o.get("price") else None,
            reduce_only=bool(o.get("reduceOnly")),
            post_only=bool(o.get("postOnly")),
            position_side=leg((o.get("info") or {}).get("positionSide")),
        )


@dataclass
class AccountView:
    positions: dict[str, float] = field(default_factory=dict)  # symbol -> signed amount
    # hedge mode (Binance dualSidePosition): True once read so (the run reads it at start;
    # a positions answer with LONG/SHORT rows says so too), None while unknown
    hedged: bool | None = None
    # hedge mode: each side's position, by ``leg_key`` ("SYMBOL|LONG" > 0, "SYMBOL|SHORT" < 0);
    # ``positions`` then holds their sum (the net) per symbol
    legs: dict[str, float] = field(default_factory=dict)
    entry_prices: dict[str, float] = field(default_factory=dict)
    orders: dict[str, OpenOrder] = field(default_factory=dict)  # key: client id or order id
    leverage: dict[str, float] = field(default_factory=dict)
    equity: float | None = None
    updated_at: float = 0.0
    # reduce-only accounting (perpbot.risk): fills of reduce-only orders that ``positions``
    # may not reflect yet (seen in an answer or an order list since the last set_positions,
    # or assumed for an order that left without its final fill known), per symbol (per
    # ``leg_key`` in hedge mode).
    reduce_only_debit: dict[str, float] = field(default_factory=dict)

    def position(self, symbol: str, position_side: str | None = None) -> float:
        """The signed position of ``symbol``: the net one, or (hedge mode, ``position_side``
        LONG or SHORT) that side's."""
        if leg(position_side) is not None:
            return self.legs.get(leg_key(symbol, position_side), 0.0)
        return self.positions.get(symbol, 0.0)

    def held_symbols(self) -> list[str]:
        """Every symbol with a position: a net one, or (hedge mode) either side's (a LONG
        and a SHORT of the same size net to nothing, and both still need closing)."""
        found = {s for s, a in self.positions.items() if a}
        found |= {key.split("|")[0] for key, a in self.legs.items() if a}
        return sorted(found)

    def open_orders(self, symbol: str | None = None) -> list[OpenOrder]:
        return [o for o in self.orders.values() if symbol is None or o.symbol == symbol]

    @staticmethod
    def _key(o: OpenOrder) -> str:
        return o.client_order_id or o.order_id or f"anon-{id(o)}"

    def set_orders(
        self, symbol: str, orders: list[dict[str, Any]], fetched_at: float | None = None
    ) -> None:
        """Replace the open orders of ``symbol`` with the exchange's list.

        ``fetched_at`` (``time.time()`` before the list was requested) keeps what this
        process learnt after the request went out (orders placed meanwhile, in-flight
        reservations) and lets the reduce-only accounting see fills that happened after the
        positions were fetched: a reduce-only order whose remaining shrank, or that vanished,
        may have reduced the position already, so the difference is debited until the next
        ``set_positions`` (see ``reduce_only_room``).
        """
        fresh = {}
        for raw in orders:
            o = OpenOrder.from_ccxt(raw)
            fresh[self._key(o)] = o
        track = fetched_at is not None and fetched_at >= self.updated_at
        kept: dict[str, OpenOrder] = {}
        for k, v in self.orders.items():
            if v.symbol != symbol:
                kept[k] = v
                continue
            if k not in fresh and fetched_at is not None and (v.inflight or v.seen_at > fetched_at):
                kept[k] = v  # learnt of after the list was requested
                continue
            if track and v.closes:  # a shrunk or vanished reduce-only order may have filled
                now = fresh.get(k)
                self._debit(v.key, v.remaining - now.remaining if now else v.remaining)
        kept.update(fresh)
        self.orders = kept

    def order_placed(self, order: dict[str, Any]) -> None:
        o = OpenOrder.from_ccxt(order)
        o.seen_at = time.time()
        key = self._key(o)
        before = self.orders.pop(key, None)  # the reservation, if any, becomes the real order
        o.reduce_only = o.reduce_only or (before is not None and before.reduce_only)
        if o.position_side is None and before is not None:
            o.position_side = before.position_side
        status = order.get("status")
        if o.closes:  # filled at once: the position view does not know it yet
            filled = order.get("filled")
            if filled is None and status == "closed":
                filled = o.amount
            self._debit(o.key, float(filled or 0.0))
        if status in (None, "open"):
            self.orders[key] = o

    # -- reduce-only accounting (perpbot.risk) --------------------------------------------
    def reserve(
        self,
        client_order_id: str,
        symbol: str,
        side: str,
        amount: float,
        *,
        reduce_only: bool,
        position_side: str | None = None,
    ) -> None:
        """Count an order that is being sent (before its answer) against the position."""
        self.orders[client_order_id] = OpenOrder(
            client_order_id=client_order_id,
            order_id=None,
            symbol=symbol,
            side=side,
            type="?",
            amount=amount,
            remaining=amount,
            price=None,
            reduce_only=reduce_only,
            seen_at=time.time(),
            inflight=True,
            position_side=leg(position_side),
        )

    def release(self, client_order_id: str, *, known: bool = True) -> None:
        """The request ended without an order: drop its reservation when the refusal is
        certain (``known``); otherwise keep counting it until an open-order list fetched
        afterwards says whether it exists."""
        o = self.orders.get(client_order_id)
        if o is not None and o.inflight:
            if known:
                del self.orders[client_order_id]
            else:
                o.inflight = False

    def reduce_only_room(
        self, symbol: str, side: str, exclude: str | None = None, position_side: str | None = None
    ) -> float:
        """How much more a reduce-only order on ``side`` may add without exceeding the
        position, after the other open and in-flight reduce-only orders on that side. In
        hedge mode (``position_side`` LONG or SHORT) the position is that side's and the
        orders counted are the other closes of that side."""
        pos = self.position(symbol, position_side)
        if not pos or (pos > 0) == (side == "buy"):
            return 0.0
        key = leg_key(symbol, position_side)
        held = sum(
            o.remaining
            for k, o in self.orders.items()
            if o.key == key and o.closes and o.side == side and k != exclude
        )
        return max(0.0, abs(pos) - self.reduce_only_debit.get(key, 0.0) - held)

    def order_gone(self, client_order_id: str | None, order_id: str | None = None) -> None:
        """An order left the book (cancelled, or not found) without its final fill known."""
        for key in [
            k
            for k, v in self.orders.items()
            if (client_order_id and v.client_order_id == client_order_id)
            or (order_id and v.order_id == order_id)
        ]:
            self._forget(key, None)

    def order_closed(self, order: dict[str, Any]) -> None:
        """An answer about a known order (a cancel's result): its fills are now known."""
        cid, oid = order.get("clientOrderId"), order.get("id")
        for key in [
            k
            for k, v in self.orders.items()
            if (cid and v.client_order_id == cid) or (oid is not None and v.order_id == str(oid))
        ]:
            filled = order.get("filled")
            if order.get("status") in (None, "open"):
                v = self.orders[key]
                if filled is not None and v.closes:
                    self._debit(v.key, float(filled) - (v.amount - v.remaining))
                    v.remaining = max(0.0, v.amount - float(filled))
            else:
                self._forget(key, float(filled) if filled is not None else None)

    def symbol_cleared(self, symbol: str) -> None:
        for key in [k for k, v in self.orders.items() if v.symbol == symbol]:
            self._forget(key, None)

    def _forget(self, key: str, filled: float | None) -> None:
        """Drop an order. A reduce-only order's fills the position view may not reflect are
        debited: all of its remaining when unknown, so its room is only given back by the
        next ``set_positions``."""
        v = self.orders.pop(key)
        if v.closes:  # an in-flight one too: it may exist and have filled
            self._debit(v.key, v.remaining if filled is None else filled - (v.amount - v.remaining))

    def _debit(self, key: str, amount: float) -> None:
        if amount > 0:
            self.reduce_only_debit[key] = self.reduce_only_debit.get(key, 0.0) + amount

    def set_positions(self, positions: list[dict[str, Any]]) -> None:
        """Replace the positions with an exchange answer (ccxt positions). A hedge-mode
        account answers one row per side (``info.positionSide`` LONG/SHORT): each goes to
        ``legs`` and their sum to ``positions``; the rows say the mode too."""
        self.positions.clear()
        self.entry_prices.clear()
        self.reduce_only_debit.clear()
        self.legs.clear()
        for p in positions:
            info = p.get("info") or {}
            symbol = str(p.get("symbol"))
            side = leg(info.get("positionSide"))
            if info.get("positionSide"):  # the rows say the account's mode
                self.hedged = side is not None
            amount = info.get("positionAmt")
            if amount is None:
                contracts = float(p.get("contracts") or 0.0)
                amount = -contracts if p.get("side") == "short" else contracts
            if not float(amount):
                continue
            if side is not None:
                self.legs[leg_key(symbol, side)] = float(amount)
                net = self.positions.get(symbol, 0.0) + float(amount)
                if net:
                    self.positions[symbol] = net
                else:
                    self.positions.pop(symbol, None)
                if p.get("entryPrice"):
                    self.entry_prices[leg_key(symbol, side)] = float(p["entryPrice"])
                continue
            self.positions[symbol] = float(amount)
            if p.get("entryPrice"):
                self.entry_prices[symbol] = float(p["entryPrice"])
        self.updated_at = time.time()

    async def refresh(self, client: GuardedClient, symbols: list[str]) -> None:
        """Fetch positions and open orders (for commands that run without a runner)."""
        self.set_positions(await client.fetch_positions(symbols or None))
        for s in symbols:
            fetched_at = time.time()
            self.set_orders(s, await client.fetch_open_orders(s), fetched_at)
