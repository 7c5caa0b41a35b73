"""The strategy's view of the world: market data, account state and order helpers.

Every helper is synchronous for the strategy and runs on the engine's event loop through the
guarded client, so each call passes every guard. The context remembers the last price it
showed the strategy for each symbol, and stamps orders with it (``decided_price`` and
``decided_at``): the risk layer refuses decisions made on stale prices and the journal
measures slippage against them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any, Literal, Protocol

import ccxt

from perpbot.client.position_side import closing_side, leg, leg_key
from perpbot.client.price_match import BOOK_DEPTH, PRICE_MATCHES, matched_price
from perpbot.client.request import OrderSpec
from perpbot.client.validate import plain_number
from perpbot.engine.api import Balance, MarketInfo
from perpbot.engine.conditional import ConditionalOrders, ConditionalSpec, Kind
from perpbot.engine.settings import change_setting
from perpbot.engine.state import PositionSnapshot
from perpbot.engine.strategy import OrderRejected, StrategyStopped
from perpbot.exits import ExitConfig, ExitVenue, run_exit
from perpbot.exits.blockers import reduce_only_freer
from perpbot.exits.venue import HeldPosition, PositionRead, client_position, leg_venue

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient
    from perpbot.config import StrategyFile
    from perpbot.engine.output import RunOutput
    from perpbot.engine.strategy import Strategy

Side = Literal["buy", "sell"]
OWN_ONLY = "that are not this run's (ctx.exit cancels only the run's own)"


def order_spec(
    symbol: str,
    side: Side,
    amount: float,
    price: float | None = None,
    *,
    post_only: bool = False,
    reduce_only: bool = False,
    time_in_force: str | None = None,
    good_till: float | None = None,
    intent: str | None = None,
    position_side: str | None = None,
    price_match: str | None = None,
) -> OrderSpec:
    """A limit order with a price (or a ``price_match``: the book sets its price), a market
    order without. GTX is post-only; ``good_till`` alone means time in force GTD;
    ``position_side`` LONG or SHORT on a hedge-mode account."""
    tif = str(time_in_force).upper() if time_in_force else None
    if good_till is not None:
        if plain_number(good_till) is None:
            raise OrderRejected(
                "BAD_PARAM", f"good_till {good_till!r}: expected epoch seconds (a number)"
            )
        tif = tif or "GTD"
    return OrderSpec(
        symbol=symbol,
        side=side,
        type="limit" if price is not None or price_match is not None else "market",
        amount=amount,
        price=price,
        post_only=bool(post_only) or tif == "GTX",
        reduce_only=bool(reduce_only),
        time_in_force=None if tif == "GTX" else tif,
        good_till=good_till,
        intent=intent,
        position_side=position_side,
        price_match=price_match,
    )


class StrategyBackend(Protocol):
    """What the context needs of the run (perpbot.app.lifecycle.Runner provides it)."""

    config: StrategyFile
    strategy: Strategy | None  # None when it runs in its own process
    run_id: str
    output: RunOutput
    loop: asyncio.AbstractEventLoop

    @property
    def client(self) -> GuardedClient: ...
    @property
    def positions(self) -> dict[str, PositionSnapshot]: ...
    @property
    def legs(self) -> dict[str, PositionSnapshot]: ...

    def kill_state(self) -> Any: ...
    async def guarded(self, coro: Coroutine[Any, Any, Any]) -> Any: ...
    async def refresh(self) -> None: ...
    async def fetch_own_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]: ...
    async def place(self, spec: OrderSpec) -> dict[str, Any]: ...
    async def cancel(self, order: dict[str, Any] | str, symbol: str | None) -> Any: ...
    async def cancel_all(self, symbol: str) -> None: ...
    # market data a stream holds fresh, or None (then the context asks REST)
    def streamed_book(self, symbol: str, limit: int | None) -> dict[str, Any] | None: ...
    def streamed_funding(self, symbol: str) -> dict[str, Any] | None: ...

    @property
    def conditional(self) -> ConditionalOrders | None: ...


class Context:
    def __init__(self, runner: StrategyBackend) -> None:
        self._runner = runner
        self.symbols: list[str] = list(runner.config.strategy.symbols)
        self.params: Any = getattr(runner.strategy, "params", None)
        self.run_id: str = runner.run_id
        self.state: dict[str, Any] = {}  # free for the strategy's own use
        self._last_price: dict[str, tuple[float, float]] = {}
        self.closed = False

    # -- bridge -----------------------------------------------------------------------------
    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        if self.closed:
            coro.close()
            raise StrategyStopped("the run is stopping")
        future = asyncio.run_coroutine_threadsafe(self._runner.guarded(coro), self._runner.loop)
        return future.result()

    def _saw_price(self, symbol: str, price: float | None, ts: float | None = None) -> None:
        if price:
            self._last_price[symbol] = (float(price), ts if ts else time.time())

    def now(self) -> float:
        return time.time()

    def log(self, message: str) -> None:
        """A line in the run's output, attributed to the strategy."""
        self._runner.output.strategy_line(message)

    @property
    def kill_state(self) -> Any:
        """The kill switch's state for this run, or None when it is clear."""
        return self._runner.kill_state()

    # -- market data ------------------------------------------------------------------------
    def market_info(self, symbol: str) -> MarketInfo:
        m = self._runner.client.market(symbol)
        limits = m.get("limits") or {}
        precision = m.get("precision") or {}
        return MarketInfo(
            symbol=symbol,
            tick_size=float(precision.get("price") or 0.0),
            step_size=float(precision.get("amount") or 0.0),
            min_amount=float((limits.get("amount") or {}).get("min") or 0.0),
            min_notional=float((limits.get("cost") or {}).get("min") or 0.0),
        )

    def round_price(self, symbol: str, price: float) -> float:
        return float(self._runner.client.exchange.price_to_precision(symbol, price))

    def round_amount(self, symbol: str, amount: float) -> float:
        return float(self._runner.client.exchange.amount_to_precision(symbol, amount))

    def ticker(self, symbol: str) -> dict[str, Any]:
        t = self._run(self._runner.client.fetch_ticker(symbol))
        ts = (t.get("timestamp") or 0) / 1000.0 or None
        self._saw_price(symbol, t.get("last"), ts)
        return t

    def order_book(self, symbol: str, limit: int | None = 20) -> dict[str, Any]:
        book = self._runner.streamed_book(symbol, limit)
        if book is None:
            book = self._run(self._runner.client.fetch_order_book(symbol, limit))
        if book.get("bids") and book.get("asks"):
            mid = (book["bids"][0][0] + book["asks"][0][0]) / 2.0
            ts = (book.get("timestamp") or 0) / 1000.0 or None
            self._saw_price(symbol, mid, ts)
        return book

    def mid(self, symbol: str) -> float:
        """Mid price from the top of the book."""
        book = self.order_book(symbol, 5)
        if not book.get("bids") or not book.get("asks"):
            return float(self.mark(symbol))
        return (book["bids"][0][0] + book["asks"][0][0]) / 2.0

    def funding(self, symbol: str) -> dict[str, Any]:
        """Funding rate and mark/index prices (Binance premiumIndex)."""
        f = self._runner.streamed_funding(symbol)
        if f is None:
            f = self._run(self._runner.client.fetch_funding_rate(symbol))
        ts = (f.get("timestamp") or 0) / 1000.0 or None
        self._saw_price(symbol, f.get("markPrice"), ts)
        return f

    def mark(self, symbol: str) -> float:
        return float(self.funding(symbol)["markPrice"])

    def ohlcv(self, symbol: str, timeframe: str = "1m", limit: int = 50) -> list[list[float]]:
        return self._run(self._runner.client.fetch_ohlcv(symbol, timeframe, None, limit))

    # -- account ----------------------------------------------------------------------------
    def position(self, symbol: str, position_side: str | None = None) -> PositionSnapshot:
        """The symbol's position; on a hedge-mode account its net, or with
        ``position_side`` LONG or SHORT that side's."""
        side = leg(position_side)
        if side is not None:
            found = self._runner.legs.get(leg_key(symbol, side))
            return found or PositionSnapshot(symbol=symbol, amount=0.0, position_side=side)
        return self._runner.positions.get(symbol) or PositionSnapshot(symbol=symbol, amount=0.0)

    def positions(self) -> dict[str, PositionSnapshot]:
        """Positions as last known (each tick's reconcile, or the user stream)."""
        return dict(self._runner.positions)

    def refresh(self) -> None:
        """Bring positions and orders up to date now: on streams, once the user stream has
        delivered what the run's own orders' answers reported; on polling, a reconcile."""
        self._run(self._runner.refresh())

    def balance(self, currency: str = "USDT") -> Balance:
        b = self._run(self._runner.client.fetch_balance())
        part = b.get(currency) or {}
        return Balance(
            currency=currency,
            free=float(part.get("free") or 0.0),
            used=float(part.get("used") or 0.0),
            total=float(part.get("total") or 0.0),
        )

    def open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """This run's open orders on the exchange (fetched now)."""
        orders = self._run(self._runner.fetch_own_open_orders(symbol))
        return orders

    # -- orders -----------------------------------------------------------------------------
    def _order(self, spec: OrderSpec, decided_price: float | None) -> dict[str, Any]:
        if decided_price is not None:
            spec.decided_price, spec.decided_at = float(decided_price), time.time()
        elif spec.symbol in self._last_price:
            spec.decided_price, spec.decided_at = self._last_price[spec.symbol]
        self._read_match(spec)
        return self._run(self._runner.place(spec))

    def _read_match(self, spec: OrderSpec) -> None:
        """A priceMatch order: read the book now (the stream's local book when fresh, else
        REST depth through every guard, charged to the budget) and note the price its level
        gives the order, for the scope and risk gates to value it at (docs/risk.md). An order
        the boundary will refuse (a bad value, a price too) reads nothing; a read the
        exchange fails leaves no reading (the gates then value it at the band edge)."""
        if spec.price_match not in PRICE_MATCHES or spec.price is not None:
            return
        try:
            book = self.order_book(spec.symbol, BOOK_DEPTH)
        except ccxt.BaseError:
            return
        bids, asks = book.get("bids") or [], book.get("asks") or []
        spec.match_price = matched_price(spec.side, str(spec.price_match), bids, asks)
        spec.match_at = time.time()

    def limit_order(
        self,
        symbol: str,
        side: Side,
        amount: float,
        price: float | None = None,
        *,
        post_only: bool = False,
        reduce_only: bool = False,
        time_in_force: str | None = None,
        good_till: float | None = None,
        intent: str | None = None,
        decided_price: float | None = None,
        position_side: str | None = None,
        price_match: str | None = None,
    ) -> dict[str, Any]:
        """A limit order; ``time_in_force``: GTC (default), IOC, FOK, GTX (post-only) or
        GTD with ``good_till`` (epoch seconds it expires at, > 600 s ahead; GTD is implied
        when only ``good_till`` is given). ``position_side``: LONG or SHORT on a hedge-mode
        account (a BUY LONG opens the long, a SELL LONG closes it). ``price_match``
        (OPPONENT, OPPONENT_5/10/20, QUEUE, QUEUE_5/10/20) instead of a price: the exchange
        prices the order from its book at entry (docs/strategy.md)."""
        if price is None and price_match is None:
            raise OrderRejected("BAD_PRICE", "limit_order needs a price or a price_match")
        spec = order_spec(symbol, side, amount, price, post_only=post_only,
                          reduce_only=reduce_only, time_in_force=time_in_force,
                          good_till=good_till, intent=intent,
                          position_side=position_side, price_match=price_match)  # fmt: skip
        return self._order(spec, decided_price)

    def post_only_order(
        self,
        symbol: str,
        side: Side,
        amount: float,
        price: float,
        *,
        intent: str | None = None,
        reduce_only: bool = False,
        position_side: str | None = None,
    ) -> dict[str, Any]:
        return self.limit_order(
            symbol, side, amount, price, post_only=True, reduce_only=reduce_only, intent=intent,
            position_side=position_side,
        )  # fmt: skip

    def market_order(
        self,
        symbol: str,
        side: Side,
        amount: float,
        *,
        reduce_only: bool = False,
        intent: str | None = None,
        decided_price: float | None = None,
        position_side: str | None = None,
    ) -> dict[str, Any]:
        spec = order_spec(
            symbol,
            side,
            amount,
            reduce_only=reduce_only,
            intent=intent,
            position_side=position_side,
        )
        return self._order(spec, decided_price)

    def reduce_only_order(
        self,
        symbol: str,
        side: Side,
        amount: float,
        price: float | None = None,
        *,
        intent: str | None = None,
        position_side: str | None = None,
    ) -> dict[str, Any]:
        """A reduce-only exit: limit when ``price`` is given, market otherwise. On a
        hedge-mode account name the side it closes (``position_side`` LONG: a sell, SHORT: a
        buy); it is sent as that close, without reduceOnly (Binance's hedge-mode rule)."""
        ps = leg(position_side)
        if ps is not None and side != closing_side(ps):
            raise OrderRejected(
                "POSITION_SIDE",
                f"reduce_only_order {side} positionSide {ps} would open the {ps} side, not "
                f"close it: a {closing_side(ps)} closes it",
            )
        kw: dict[str, Any] = {"reduce_only": ps is None, "intent": intent, "position_side": ps}
        if price is None:
            return self.market_order(symbol, side, amount, **kw)
        return self.limit_order(symbol, side, amount, price, **kw)

    def exit(
        self,
        symbol: str,
        policy: str = "adaptive",
        position_side: str | None = None,
        **config: Any,
    ) -> dict[str, Any] | None:
        """Close ``symbol``'s position with an exit policy (docs/exits.md); None when flat.

        ``policy``: market, slices, passive-then-aggressive or adaptive; ``config``: any
        ExitConfig field (participation, band_bps, pace_s, timeout_s...). Every child order
        goes through the run (ledger, guards) and is an explained ``exit`` Decision. On a
        hedge-mode account ``position_side`` (LONG or SHORT) names the side to close.
        It first brings the run's state up to date (``refresh``; a shared run's position
        reads do it each time): the pre-trade checks judge each child against the position
        the exit reads, not one from before the order that opened it (which would refuse
        every child as reducing nothing). A child refused for the room the run's own resting
        reduce-only orders on that side hold (a take-profit limit: RISK_REDUCE_ONLY_EXCEEDS,
        Binance -4118) cancels those orders and goes on, said (EXIT_REDUCE_ONLY_FREED).
        """
        client = self._runner.client
        side = leg(position_side)
        if self._runner.config.strategy.share_symbols:  # what this run holds, not the account
            held = self._own_position(side)
        else:
            self.refresh()
            held = client_position(client, side)
        runner = self._runner
        free = reduce_only_freer(runner.fetch_own_open_orders, runner.cancel)
        venue = ExitVenue(client, runner.place, runner.cancel, held, free, OWN_ONLY)
        if side is not None:
            venue = leg_venue(venue, side, held)
        res = self._run(run_exit(venue, symbol, policy, ExitConfig(**config)))
        return None if res is None else res.to_dict()

    def _own_position(self, side: str | None) -> PositionRead:
        """A shared run's position (``[strategy] share_symbols``: its own fills), brought up
        to date at each read: its exit closes what this run holds, never the share of the
        account's position that other runs hold."""
        runner = self._runner

        async def position(symbol: str) -> HeldPosition:
            await runner.refresh()
            own = (runner.legs if side else runner.positions).get(leg_key(symbol, side))
            if own is None:
                return HeldPosition(0.0)
            return HeldPosition(own.amount, own.liquidation_price, own.mark_price)

        return position

    def cancel_order(self, order: dict[str, Any] | str, symbol: str | None = None) -> Any:
        """Cancel by order dict, exchange order id, or this run's client order id."""
        return self._run(self._runner.cancel(order, symbol))

    def cancel_all(self, symbol: str | None = None) -> None:
        """Cancel this run's open orders (by client id); orders it did not place stay."""
        for s in [symbol] if symbol else self.symbols:
            self._run(self._runner.cancel_all(s))

    # -- more orders (issue 17 item 3) ------------------------------------------------------
    def place_orders(self, orders: list[dict[str, Any]]) -> list[dict[str, Any] | OrderRejected]:
        """Batch placement: each dict holds ``limit_order``'s (with ``price``) or
        ``market_order``'s keyword arguments (``symbol``, ``side``, ``amount``...). All are
        sent at once, each through every guard; the answer is in the same order, an
        ``OrderRejected`` in place of a refused one (the others stand)."""
        specs = [self._batch_spec(o) for o in orders]

        async def all_of() -> list[Any]:
            return await asyncio.gather(
                *(self._runner.place(s) for s in specs), return_exceptions=True
            )

        results = self._run(all_of())
        out: list[dict[str, Any] | OrderRejected] = []
        for r in results:
            if isinstance(r, OrderRejected | dict):
                out.append(r)
            elif isinstance(r, BaseException):
                raise r
        return out

    def _batch_spec(self, o: dict[str, Any]) -> OrderSpec:
        known = {"symbol", "side", "amount", "price", "post_only", "reduce_only",
                 "time_in_force", "good_till", "intent", "position_side",
                 "price_match"}  # fmt: skip
        unknown = set(o) - known
        if unknown:
            raise OrderRejected("BAD_PARAM", f"place_orders: unknown keys {sorted(unknown)}")
        flags = {k: o[k] for k in known - {"symbol", "side", "amount", "price"} if k in o}
        spec = order_spec(o["symbol"], o["side"], o["amount"], o.get("price"), **flags)
        if spec.symbol in self._last_price:
            spec.decided_price, spec.decided_at = self._last_price[spec.symbol]
        self._read_match(spec)
        return spec

    def modify_order(
        self,
        order: dict[str, Any],
        *,
        amount: float | None = None,
        price: float | None = None,
    ) -> dict[str, Any]:
        """Change a resting limit order's amount and/or price: cancel, then place the new
        one (with the same flags) through every guard. A priceMatch order keeps its
        priceMatch (the book prices the new one) unless a ``price`` is given. Not atomic:
        the new order queues last, and if the old one filled meanwhile the cancel finds
        nothing and the new one is not placed (OrderRejected ``MODIFY_GONE``)."""
        symbol = order.get("symbol")
        if not symbol:
            raise OrderRejected("BAD_CANCEL", "modify_order needs the order's symbol")
        cancelled = self.cancel_order(order, symbol)
        if cancelled is None or str(cancelled.get("status")) not in ("canceled", "cancelled"):
            raise OrderRejected(
                "MODIFY_GONE", f"order {order.get('clientOrderId')} was no longer open "
                "(filled or cancelled), so it was not replaced",
            )  # fmt: skip
        filled = float(cancelled.get("filled") or 0.0)
        left = float(order.get("amount") or 0.0) - filled
        info = order.get("info") or {}
        tif = None if order.get("postOnly") else order.get("timeInForce")
        good_till = int(info["goodTillDate"]) / 1000 if tif == "GTD" else None
        side = leg(info.get("positionSide"))  # hedge mode: the same side, no reduceOnly
        reduce_only = bool(order.get("reduceOnly") or info.get("reduceOnly") in (True, "true"))
        match = info.get("priceMatch") if price is None else None
        match = match if match in PRICE_MATCHES else None
        return self.limit_order(
            symbol,
            order["side"],
            amount if amount is not None else left,
            price if price is not None or match else float(order["price"]),
            post_only=bool(order.get("postOnly")),
            reduce_only=reduce_only and side is None,
            time_in_force=tif,
            good_till=good_till,
            position_side=side,
            price_match=match,
        )

    def set_leverage(self, symbol: str, leverage: float) -> Any:
        """Set the symbol's leverage (scope ``leverage``; judged against [risk] max_leverage
        and the key's grant)."""
        call = self._runner.client.set_leverage(leverage, symbol)
        bus = self._runner.client.bus
        return self._run(change_setting(bus, f"set leverage {leverage:g}", symbol, call))

    def set_margin_mode(self, symbol: str, mode: Literal["cross", "isolated"]) -> Any:
        """Set the symbol's margin mode (scope ``leverage``)."""
        call = self._runner.client.set_margin_mode(mode, symbol)
        bus = self._runner.client.bus
        return self._run(change_setting(bus, f"set margin mode {mode}", symbol, call))

    # -- conditional orders (Algo Order API; scope ``stop``) ------------------------------
    def _conditional(self, spec: ConditionalSpec) -> dict[str, Any]:
        stops = self._runner.conditional
        if stops is None:
            raise OrderRejected("NOT_CONNECTED", "conditional orders need a connected run")
        mark = self._last_price.get(spec.symbol, (None, 0.0))[0]
        side = leg(spec.position_side)
        if side is None:
            snapshot = self._runner.positions.get(spec.symbol)
        else:  # hedge mode: judged against the side it acts on
            snapshot = self._runner.legs.get(leg_key(spec.symbol, side))
        if snapshot is not None and snapshot.mark_price:
            mark = snapshot.mark_price
        return self._run(stops.place(spec, position=snapshot, mark=mark))

    def conditional_order(
        self,
        symbol: str,
        side: Side,
        kind: Kind,
        amount: float | None = None,
        *,
        trigger_price: float | None = None,
        price: float | None = None,
        callback_rate: float | None = None,
        activation_price: float | None = None,
        close_position: bool = False,
        reduce_only: bool = False,
        working_type: str = "MARK_PRICE",
        intent: str | None = None,
        position_side: str | None = None,
    ) -> dict[str, Any]:
        """Any conditional order: ``kind`` is stop_market, take_profit_market, stop,
        take_profit (limit at ``price``) or trailing_stop (``callback_rate`` percent).
        ``position_side`` LONG or SHORT on a hedge-mode account (needed there); reduce-only
        then means a close of that side (sell LONG, buy SHORT)."""
        spec = ConditionalSpec(
            symbol=symbol, side=side, kind=kind, amount=amount, trigger_price=trigger_price,
            price=price, callback_rate=callback_rate, activation_price=activation_price,
            close_position=close_position, reduce_only=reduce_only,
            working_type=working_type, intent=intent, position_side=position_side,
        )  # fmt: skip
        return self._conditional(spec)

    def stop_market_order(
        self,
        symbol: str,
        side: Side,
        trigger_price: float,
        amount: float | None = None,
        *,
        close_position: bool = False,
        reduce_only: bool = True,
        intent: str | None = None,
        position_side: str | None = None,
    ) -> dict[str, Any]:
        """A protective stop: reduce-only by default; ``close_position=True`` (no amount)
        closes whatever position stands when it fires (in hedge mode: that side's)."""
        return self.conditional_order(
            symbol, side, "stop_market", None if close_position else amount,
            trigger_price=trigger_price, close_position=close_position,
            reduce_only=reduce_only and not close_position, intent=intent,
            position_side=position_side,
        )  # fmt: skip

    def take_profit_order(
        self,
        symbol: str,
        side: Side,
        trigger_price: float,
        amount: float | None = None,
        *,
        price: float | None = None,
        close_position: bool = False,
        reduce_only: bool = True,
        intent: str | None = None,
        position_side: str | None = None,
    ) -> dict[str, Any]:
        """A take-profit: market when it fires, or a limit at ``price``."""
        kind: Kind = "take_profit" if price is not None else "take_profit_market"
        return self.conditional_order(
            symbol, side, kind, None if close_position else amount, trigger_price=trigger_price,
            price=price, close_position=close_position,
            reduce_only=reduce_only and not close_position, intent=intent,
            position_side=position_side,
        )  # fmt: skip

    def trailing_stop_order(
        self,
        symbol: str,
        side: Side,
        amount: float,
        callback_rate: float,
        *,
        activation_price: float | None = None,
        reduce_only: bool = True,
        intent: str | None = None,
        position_side: str | None = None,
    ) -> dict[str, Any]:
        """A trailing stop that fires ``callback_rate`` percent back from the best price."""
        return self.conditional_order(
            symbol, side, "trailing_stop", amount, callback_rate=callback_rate,
            activation_price=activation_price, reduce_only=reduce_only, intent=intent,
            position_side=position_side,
        )  # fmt: skip

    def conditional_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """This run's conditional orders standing on the exchange (fetched now)."""
        stops = self._runner.conditional
        if stops is None:
            return []
        out: list[dict[str, Any]] = []
        for s in [symbol] if symbol else self.symbols:
            out.extend(self._run(stops.open(s)))
        return out

    def cancel_conditional(self, order: dict[str, Any] | str, symbol: str) -> Any:
        """Cancel one conditional order (its dict or client id)."""
        stops = self._runner.conditional
        if stops is None:
            return None
        return self._run(stops.cancel(order, symbol))
