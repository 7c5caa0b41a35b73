"""Reconciliation: bring positions, order states, fills, marks and equity up to date.

The exchange is the truth. Every tick (and at start, and once more at the stop) the run
lists positions and open orders, looks up each tracked order that left the listing, reads
new fills, the mark price and the balance. Fills go to the ledger and the journal.

On streams (perpbot.streams) the user data stream feeds the same ``record_trades`` and
``record_order``: a fill is recorded, journalled and published (perpbot.engine.events) once,
whichever of the stream and REST brings it first (the ledger deduplicates by trade id).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import ccxt

from perpbot.client.account import AccountView
from perpbot.client.guarded import GuardedClient
from perpbot.client.position_side import HEDGE_SIDES, leg, leg_key
from perpbot.engine.events import EngineEvents, FillEvent, OrderEvent, Source
from perpbot.engine.journal import RunJournal
from perpbot.engine.ledger import Fill, Ledger
from perpbot.engine.output import RunOutput
from perpbot.engine.state import PositionSnapshot, RunState
from perpbot.engine.unplaced import UNKNOWN_CLIENT_ID, UnplacedFills
from perpbot.engine.unsettled import UnsettledFills

REST_OVERLAP_MS = 2_000  # a REST read of fills re-reads this much before the last listed
# an unnamed REST fill's order: it is said without its client id once this many lookups of
# it have failed over at least this long (a passing outage must not make a fill foreign)
LOOKUP_TRIES = 3
LOOKUP_GIVE_UP_S = 30.0
FORCE_ORDERS_WINDOW_MS = 60_000  # forceOrders read around the unnamed fill's time


def _price(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if v else None


def epoch_ms(x: Any) -> int | None:
    """An exchange time in epoch ms; None for none (or 0, which Binance gives as "never")."""
    try:
        v = int(x)
    except (TypeError, ValueError):
        return None
    return v if v > 0 else None


def position_of(raw: dict[str, Any]) -> PositionSnapshot:
    """A ccxt position as a signed snapshot (Binance's ``positionAmt`` when present), dated
    by the change it shows: the user stream's transaction time (``T``, copied into each
    position by perpbot.streams.exchange), positionRisk's ``updateTime``."""
    info = raw.get("info") or {}
    amount = float(info.get("positionAmt") or 0.0)
    if not amount:
        contracts = float(raw.get("contracts") or 0.0)
        amount = -contracts if raw.get("side") == "short" else contracts
    return PositionSnapshot(
        symbol=str(raw.get("symbol")),
        amount=amount,
        entry_price=_price(raw.get("entryPrice")),
        mark_price=_price(raw.get("markPrice")),
        unrealized_pnl=float(raw.get("unrealizedPnl") or 0.0),
        liquidation_price=_price(raw.get("liquidationPrice")),
        leverage=_price(raw.get("leverage")),
        position_side=leg(info.get("positionSide") or info.get("ps")),  # REST, user stream
        updated_ms=epoch_ms(info.get("T")) or epoch_ms(info.get("updateTime")),
    )


def position_raw(p: PositionSnapshot) -> dict[str, Any]:
    """A PositionSnapshot in the shape AccountView.set_positions reads."""
    info: dict[str, Any] = {"positionAmt": p.amount}
    if p.position_side is not None:  # a hedge-mode side
        info["positionSide"] = p.position_side
    return {"symbol": p.symbol, "info": info, "entryPrice": p.entry_price}


def split_legs(
    snaps: list[PositionSnapshot], symbols: list[str]
) -> tuple[dict[str, PositionSnapshot], dict[str, PositionSnapshot]]:
    """(positions by symbol, hedge-mode sides by ``leg_key``). A symbol held on both sides
    of a hedge-mode account gets one net snapshot (amounts and PnL summed, no entry)."""
    positions: dict[str, PositionSnapshot] = {}
    legs: dict[str, PositionSnapshot] = {}
    for p in snaps:
        if p.symbol not in symbols:
            continue
        if p.position_side is None:
            positions[p.symbol] = p
            continue
        if not p.amount:
            continue
        legs[leg_key(p.symbol, p.position_side)] = p
        other = positions.get(p.symbol)
        positions[p.symbol] = (
            replace(p, position_side=None)
            if other is None
            else replace(
                other,
                amount=other.amount + p.amount,
                entry_price=None,
                unrealized_pnl=other.unrealized_pnl + p.unrealized_pnl,
                liquidation_price=None,
                updated_ms=max(other.updated_ms or 0, p.updated_ms or 0) or None,
            )
        )
    return positions, legs


@dataclass(slots=True, kw_only=True)
class Reconciler:
    client: GuardedClient
    state: RunState
    ledger: Ledger
    account: AccountView
    journal: RunJournal
    output: RunOutput
    events: EngineEvents | None = None
    # A shared (account, symbol) (``[strategy] share_symbols``): the run's positions and the
    # orders its reduce-only room counts are its own (its fills, its client ids), not the
    # account's. None: the account's are the run's.
    own_only: Callable[[dict[str, Any]], bool] | None = None
    # symbol -> the newest trade time REST has listed. The next REST read of fills starts
    # there (less REST_OVERLAP_MS), never at the newest fill recorded: a stream that lost a
    # fill and delivered a later one must not move the start past the lost one. Nor past a
    # trade of an order the run cannot name yet while one of its placements awaits its
    # answer (it may be that order's: the next read must list it again).
    rest_trade_ms: dict[str, int] = field(default_factory=dict)
    # fills of orders the run did not place (a liquidation, an ADL, another client's): said
    # once each (perpbot.engine.unplaced); None: not looked at
    unplaced: UnplacedFills | None = None
    # fills the run's answers reported that the positions may not include yet (the
    # OrderManager's); each reconcile settles those it started after
    unsettled: UnsettledFills = field(default_factory=UnsettledFills)
    # trade id -> (symbol, trade): a REST fill of an order the run cannot name whose order
    # could not be looked up yet; tried again at each reconcile (the read window moves on)
    unresolved: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)
    # order id -> (failed lookups of it so far, time.monotonic() of the first failure)
    lookup_failures: dict[str, tuple[int, float]] = field(default_factory=dict)
    lookup_give_up_s: float = LOOKUP_GIVE_UP_S
    # a shared run: the account's (the exchange's) net position per symbol as last read (REST,
    # or the user stream's ACCOUNT_UPDATE); absent: flat at the last REST read
    account_held: dict[str, PositionSnapshot] = field(default_factory=dict)
    # symbol -> when (the exchange's epoch ms) an earlier run of this strategy last looked at
    # the account (perpbot.kill.sweep): the REST reads of fills start there, not at this
    # run's start, so a fill of that run's order made while no run watched is said
    # (FILL_FOREIGN, "an order of an earlier run of this strategy"); it is not this run's
    lookback_ms: dict[str, int] = field(default_factory=dict)

    async def reconcile(self, *, market: bool = True) -> None:
        """Everything; ``market=False`` skips the mark and the balance (a run on streams
        has both from its streams: its periodic safety-net read checks orders and fills)."""
        state, symbols = self.state, self.state.symbols
        answered = dict(self.unsettled.pending)  # the read below includes these fills
        snaps, rows = self.admitted(await self.client.fetch_positions(symbols))
        state.positions, state.legs = split_legs(snaps, symbols)
        if self.own_only is None:
            self.account.set_positions(rows)
        else:
            self.account_held = dict(state.positions)
        for s in symbols:
            await self._orders(s)
            await self._fills(s)
            if not market:
                continue
            fr = await self.client.fetch_funding_rate(s)
            if fr.get("markPrice"):
                state.marks[s] = float(fr["markPrice"])
                state.mark_times[s] = (fr.get("timestamp") or time.time() * 1000.0) / 1000.0
        if self.own_only is not None:
            self.own_positions(state.positions, state.legs)
        self.unsettled.settle(answered)
        if not market:
            return
        balance = await self.client.fetch_balance()
        total = (balance.get("total") or {}).get("USDT")
        if total is not None:
            state.equity = float(total)
            self.account.equity = state.equity
            state.peak_equity = max(state.peak_equity or state.equity, state.equity)

    def admitted(
        self, raw: list[dict[str, Any]]
    ) -> tuple[list[PositionSnapshot], list[dict[str, Any]]]:
        """REST's positions (snapshots, and rows for the account view), each one that shows
        an older change than the user stream already brought (read before it, answered
        after) kept as the run has it (RunState.admit); a hedge-mode side that has gone flat
        since is left out."""
        state = self.state
        snaps: list[PositionSnapshot] = []
        rows: list[dict[str, Any]] = []
        for r in raw:
            p = position_of(r)
            if not state.admit(p):
                table = state.legs if p.position_side else state.positions
                newer = table.get(leg_key(p.symbol, p.position_side))
                if newer is None:
                    continue
                p, r = newer, position_raw(newer)
            snaps.append(p)
            rows.append(r)
        return snaps, rows

    def own_positions(
        self,
        account: dict[str, PositionSnapshot],
        account_legs: dict[str, PositionSnapshot],
    ) -> None:
        """This run's positions from its own fills, priced at the exchange's mark; on a
        hedge-mode account each side from its side's fills (``state.legs``, the net in
        ``state.positions``). The liquidation price and leverage are the account's."""
        self.settle_closed()
        snaps: list[PositionSnapshot] = []
        raw: list[dict[str, Any]] = []
        for s in self.state.symbols:
            for side in (None, *HEDGE_SIDES):
                key = leg_key(s, side)
                book = self.ledger.book.get(key)
                if book is None or not book.amount:
                    continue
                theirs = (account if side is None else account_legs).get(key)
                mark = self.state.marks.get(s) or (theirs.mark_price if theirs else None)
                if mark is None and s in account:
                    mark = account[s].mark_price
                upnl = (mark - book.entry_price) * book.amount if mark and book.entry_price else 0.0
                snaps.append(
                    PositionSnapshot(
                        symbol=s,
                        amount=book.amount,
                        entry_price=book.entry_price,
                        mark_price=mark,
                        unrealized_pnl=upnl,
                        liquidation_price=theirs.liquidation_price if theirs else None,
                        leverage=theirs.leverage if theirs else None,
                        position_side=side,
                    )
                )
                info: dict[str, Any] = {"positionAmt": book.amount}
                if side is not None:
                    info["positionSide"] = side
                raw.append({"symbol": s, "info": info, "entryPrice": book.entry_price})
        self.state.positions, self.state.legs = split_legs(snaps, self.state.symbols)
        self.account.set_positions(raw)

    def account_read(self, raw: list[dict[str, Any]]) -> None:
        """A shared run: the account's positions as the user stream last told them."""
        snaps = [position_of(r) for r in raw if r.get("symbol") in self.state.symbols]
        nets, _ = split_legs(snaps, self.state.symbols)
        for symbol in {p.symbol for p in snaps}:
            at = max((p.updated_ms or 0) for p in snaps if p.symbol == symbol) or None
            self.account_held[symbol] = nets.get(symbol) or PositionSnapshot(
                symbol=symbol, amount=0.0, updated_ms=at
            )

    def settle_closed(self) -> None:
        """A shared run after a liquidation or ADL said on a symbol (perpbot.engine.unplaced):
        once a read of the account after it shows the account holding none of the symbol,
        the run's own book there is flat (the exchange closed every holder's share). If the
        account still holds some (a partial liquidation or ADL), no one can say whose
        share went: the run's own book stays as its fills left it (the decision said so)."""
        unplaced = self.unplaced
        if unplaced is None:
            return
        for symbol, at_ms in list(unplaced.closed.items()):
            held = self.account_held.get(symbol)
            if held is not None and held.amount and (held.updated_ms or 0) < at_ms:
                continue  # a read from before the fill: wait for a newer one
            del unplaced.closed[symbol]
            if held is None or not held.amount:
                self.ledger.flatten(symbol)

    async def _orders(self, symbol: str) -> None:
        tracked = self.ledger.open_client_ids(symbol)
        fetched_at = time.time()
        listed = await self.client.fetch_open_orders(symbol)
        if self.own_only is not None:
            listed = [o for o in listed if self.own_only(o)]
        self.account.set_orders(symbol, listed, fetched_at)  # fills/cancels reach the view
        open_orders = {o.get("clientOrderId"): o for o in listed}
        for cid in tracked:
            if cid in open_orders:
                self.record_order(cid, open_orders[cid], "rest")
                continue
            try:
                order = await self.client.fetch_order(None, symbol, client_order_id=cid)
            except ccxt.OrderNotFound:
                self.ledger.update(cid, {"status": "expired"})
                continue
            self.record_order(cid, order, "rest")

    async def _fills(self, symbol: str) -> list[Fill]:
        listed = self.rest_trade_ms.get(symbol)
        start = min(self.state.since_ms, self.lookback_ms.get(symbol, self.state.since_ms))
        since = start if listed is None else max(start, listed - REST_OVERLAP_MS)
        trades = await self.client.fetch_my_trades(symbol, since=since)
        ours = [
            t for t in trades if not t.get("timestamp") or t["timestamp"] >= self.state.since_ms
        ]
        new = self.record_trades(symbol, ours, "rest")  # before the start: not this run's
        await self.say_unplaced(symbol, trades)
        stamps = [int(t["timestamp"]) for t in trades if t.get("timestamp")]
        if stamps:
            newest = max(listed or 0, *stamps)
            if self.ledger.unanswered[symbol]:
                unnamed = [
                    int(t["timestamp"])
                    for t in trades
                    if t.get("timestamp") and not self.ledger.names_order(t)
                ]
                newest = min(newest, *unnamed) if unnamed else newest
            self.rest_trade_ms[symbol] = newest
        return new

    async def say_unplaced(self, symbol: str, trades: list[dict[str, Any]]) -> None:
        """Book or say each REST fill of an order the ledger cannot name. userTrades carry no
        client id: the order is looked up (GET /fapi/v1/order) unless the user stream told
        it. The order a conditional order of this run placed when it fired is the run's own
        and booked (``Ledger.triggered``); any other not of this run is said once
        (perpbot.engine.unplaced). A lookup that fails is tried again at the next reconciles;
        after LOOKUP_TRIES failures over LOOKUP_GIVE_UP_S, or at once when the exchange
        answers the order does not exist (-2013), the account's liquidation and ADL orders
        are read once (GET /fapi/v1/forceOrders): listed there, the fill is said as the
        liquidation or ADL it is; else as FILL_FOREIGN, its client id unknown."""
        unplaced = self.unplaced
        if unplaced is None:
            return
        for t in trades:
            tid = str(t.get("id"))
            if t.get("order") is None or self.ledger.names_order(t) or tid in unplaced.said:
                continue
            self.unresolved.setdefault(tid, (symbol, t))
        looked: dict[str, dict[str, Any] | None] = {}  # one lookup per order per reconcile
        for tid, (sym, t) in list(self.unresolved.items()):
            if tid not in self.unresolved:  # a reconcile running beside this one took it
                continue
            if self.ledger.names_order(t):  # its placement answer came meanwhile: booked
                del self.unresolved[tid]
                continue
            oid = str(t["order"])
            cid = unplaced.client_ids.get(oid)
            order: dict[str, Any] = {"id": oid}
            if cid is None:
                if oid not in looked:
                    looked[oid] = await self._look_up(sym, oid)
                found = looked[oid]
                if found is None:
                    continue  # tried again next time
                if not found:  # not looked up: the exchange's liquidation and ADL orders?
                    found = looked[oid] = await self._force_order(sym, oid, t)
                # {}: no lookup will tell (-2013, or LOOKUP_TRIES failed): said as it is
                cid = str(found.get("clientOrderId") or "(none)") if found else UNKNOWN_CLIENT_ID
                order = found or order
                unplaced.remember(oid, cid)
            if self.unresolved.pop(tid, None) is None:
                continue  # a reconcile running beside this one said it while this one looked
            if self.ledger.triggered(cid, order):
                self.record_trades(sym, [t], "rest")  # the run's stop fired: its own fill
                if order.get("status"):
                    self.record_order(cid, order, "rest")
            elif not self.ledger.names_order(t):
                unplaced.note(sym, t, cid, "rest")

    async def _look_up(self, symbol: str, order_id: str) -> dict[str, Any] | None:
        """The order of an unnamed REST fill (GET /fapi/v1/order); None: try again later;
        {} when no lookup will name it: the exchange says it does not exist (-2013), or
        LOOKUP_TRIES lookups failed over ``lookup_give_up_s`` or more (while no placement of
        the run on ``symbol`` awaits its answer: the fill may be that placement's)."""
        try:
            order = await self.client.fetch_order(order_id, symbol)
        except ccxt.OrderNotFound:
            self.lookup_failures.pop(order_id, None)
            return {}
        except Exception:  # a 5xx, a timeout, a refusal: tried again next time, a few times
            now = time.monotonic()
            tries, first = self.lookup_failures.get(order_id, (0, now))
            self.lookup_failures[order_id] = (tries + 1, first)
            if (
                tries + 1 < LOOKUP_TRIES
                or now - first < self.lookup_give_up_s
                or self.ledger.unanswered[symbol]
            ):
                return None
            del self.lookup_failures[order_id]
            return {}
        self.lookup_failures.pop(order_id, None)
        return order if isinstance(order, dict) else {}

    async def _force_order(
        self, symbol: str, order_id: str, trade: dict[str, Any]
    ) -> dict[str, Any]:
        """The account's liquidation or ADL order ``order_id`` as GET /fapi/v1/forceOrders
        lists it around ``trade``'s time (weight 20, asked once): its client id says which
        (``autoclose-``, ``adl_autoclose``); {} when not listed or the read fails."""
        at = int(trade.get("timestamp") or time.time() * 1000)
        params = {
            "symbol": self.client.market(symbol)["id"],
            "startTime": at - FORCE_ORDERS_WINDOW_MS,
            "endTime": at + FORCE_ORDERS_WINDOW_MS,
            "limit": 100,
        }
        try:
            listed = await self.client.call("fapiprivate_get_forceorders", params, symbol=symbol)
        except Exception:  # asked once: the fill is said without its client id
            return {}
        for o in listed if isinstance(listed, list) else []:
            if isinstance(o, dict) and str(o.get("orderId")) == order_id:
                return {"id": order_id, "clientOrderId": o.get("clientOrderId")}
        return {}

    def record_trades(
        self, symbol: str, trades: list[dict[str, Any]], source: Source
    ) -> list[Fill]:
        """Record this run's new fills among ``trades`` (ccxt trades); returns the new ones."""
        new = self.ledger.add_trades(symbol, trades)
        for fill in new:
            self.journal.fill({**fill.to_dict(), "source": source})
            self.output.note(
                f"fill {fill.symbol} {fill.side} {fill.amount:g} @ {fill.price:g} "
                f"({'maker' if fill.maker else 'taker'}, fee {fill.fee:.4f})"
            )
            if self.events is not None:
                self.events.publish(FillEvent(fill=fill, source=source))
        return new

    def record_order(self, cid: str, order: dict[str, Any], source: Source) -> None:
        """Bring a tracked order up to date; publish an OrderEvent when it changed."""
        tracked = self.ledger.orders.get(cid)
        if tracked is None:
            return
        before = (tracked.status, tracked.filled)
        self.ledger.update(cid, order)
        if self.events is not None and (tracked.status, tracked.filled) != before:
            self.events.publish(
                OrderEvent(
                    client_order_id=cid,
                    symbol=tracked.spec.symbol,
                    status=tracked.status,
                    filled=tracked.filled,
                    order=order,
                    source=source,
                )
            )

    async def funding(self) -> float:
        total = 0.0
        for s in self.state.symbols:
            for item in await self.client.fetch_funding_history(s, since=self.state.since_ms):
                total += float(item.get("amount") or 0.0)
        self.ledger.funding = total
        return total
