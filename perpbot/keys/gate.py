"""ScopeGate: the pipeline layer that refuses, before any request, what a grant does not cover.

For every request: the method must map to a scope (an unmapped method is denied), the
profile's grant for the request's command must cover that scope, and the profile's limits
(symbols, max order notional, max leverage) must hold. Orders and leverage changes are
judged as they will go on the wire (arguments with ccxt's ``params`` laid over them:
``perpbot.client.validate``, which refuses a param that would override a judged field),
not by the OrderSpec describing them. Notional is valued at the worst of the order's own
price and the mark/index perpbot knows, never at the strategy's decided price alone.

A command holding ``reduce`` but not ``trade`` may only place orders that are reduce-only
*and* cannot grow the position as the shared AccountView knows it (the position minus the
other reduce-only orders on that side: ``AccountView.reduce_only_room``). A command without
a runner never refreshes that view; the gate then uses the positions of the latest
``fetch_positions`` answer that passed through it. Knowing neither, it denies: a layer
cannot make a request of its own to find out.

Without a profile (the embedded simulator's throwaway paper account) the grant is None and
everything but transfer/withdraw is allowed; unmapped methods are still denied.
"""

from __future__ import annotations

import math
import shlex
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from perpbot.client.account import AccountView
from perpbot.client.position_side import HEDGE_SIDES
from perpbot.client.price_match import valuation
from perpbot.client.validate import (
    OrderRefused,
    WireOrder,
    find_market,
    wire_leverage,
    wire_margin_mode,
    wire_order,
)
from perpbot.events import Decision
from perpbot.keys.scopes import (
    LEVERAGE,
    PAPER_SCOPES,
    REDUCE,
    SCOPES,
    TRADE,
    covers,
    denial,
    grant_hint,
    method_scope,
)

if TYPE_CHECKING:
    from perpbot.client.account import AccountView
    from perpbot.client.pipeline import CallNext
    from perpbot.client.request import Request
    from perpbot.client.setup import Setup
    from perpbot.events import EventBus
    from perpbot.keys.grant import Grant

_EPS = 1e-9


ALGO_ORDER = "fapiprivate_post_algoorder"


def _algo_symbol(request: Request) -> str:
    """The market a conditional order (POST /fapi/v1/algoOrder) is sent for."""
    params = request.args[0] if request.args else request.params
    symbol = params.get("symbol") if isinstance(params, dict) else None
    if not isinstance(symbol, str) or not symbol:
        raise OrderRefused(f"{request.method}: no symbol to judge", code="BAD_SYMBOL")
    return symbol


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _fmt(x: float | None) -> str:
    return "?" if x is None else f"{x:g}"


class ScopeGate:
    name = "scope"

    def __init__(
        self,
        *,
        grant: Grant | None,
        profile: str | None,
        bus: EventBus,
        account: AccountView,
        exchange: Any = None,
        prices: Callable[[str], list[float | None]] | None = None,
    ) -> None:
        self.grant = grant
        self.profile = profile
        self.bus = bus
        self.account = account
        self.exchange = exchange
        self._seen: AccountView | None = None  # positions from answers that passed the gate
        self._seen_marks: dict[str, float] = {}  # their mark prices, by unified symbol
        self.prices = prices  # the run's known mark/index prices of a symbol

    def passes(self, request: Request) -> bool:
        """Whether every request of this method and command is allowed whatever its
        arguments (the grant is fixed for the gate's life): the pipeline then routes them
        past the gate. Orders (plain and conditional), leverage changes (symbol and leverage
        limits) and position reads (remembered for reduce-only judgement) are judged one by
        one."""
        if request.method in ("create_order", "fetch_positions", ALGO_ORDER):
            return False
        scope = method_scope(request.method)
        if scope is None or scope == LEVERAGE:
            return False
        allowed = PAPER_SCOPES if self.grant is None else self.grant.scopes_for(request.command)
        return covers(allowed, scope)

    async def __call__(self, request: Request, call_next: CallNext) -> Any:
        self.check(request)
        result = await call_next(request)
        if request.method == "fetch_positions" and isinstance(result, list):
            self._note_positions(request, result)
        return result

    def _note_positions(self, request: Request, positions: list[Any]) -> None:
        """Remember the positions an answer showed, for commands without a runner (a
        ``kill --direct`` reads positions before it flattens) whose shared AccountView is
        never refreshed. Only positions: open reduce-only orders are the exchange's to cap."""
        fresh = AccountView()
        fresh.set_positions([p for p in positions if isinstance(p, dict)])
        for p in positions:
            mark = _number(p.get("markPrice")) if isinstance(p, dict) else None
            symbol = self._unified(p.get("symbol")) if mark and isinstance(p, dict) else None
            if symbol and mark:
                self._seen_marks[symbol] = mark
        wanted = request.args[0] if request.args else request.kwargs.get("symbols")
        if self._seen is None or not wanted:
            self._seen = fresh
            return
        names = {self._unified(s) for s in wanted if isinstance(s, str)}
        kept = {s: a for s, a in self._seen.positions.items() if s not in names}
        self._seen.positions = {**kept, **fresh.positions}
        legs = {k: a for k, a in self._seen.legs.items() if k.split("|")[0] not in names}
        self._seen.legs = {**legs, **fresh.legs}
        self._seen.hedged = fresh.hedged if fresh.hedged is not None else self._seen.hedged
        self._seen.updated_at = fresh.updated_at

    def _hedged(self) -> bool | None:
        """The account's position mode as known: the shared view's, else a positions
        answer's (a command without a runner), None: not known."""
        if self.account.hedged is not None or self._seen is None:
            return self.account.hedged
        return self._seen.hedged

    def _view(self) -> AccountView | None:
        """The account knowledge to judge reduce-only orders by (None: nothing known)."""
        if self.account.updated_at:
            return self.account
        return self._seen

    # -- the checks -------------------------------------------------------------------------
    def check(self, request: Request) -> None:
        """Raise PermissionDenied (and publish the denial) unless the request is allowed;
        OrderRefused (BAD_AMOUNT, BAD_PRICE, BAD_PARAM...) for an order or setting whose
        wire form cannot be judged."""
        try:
            self._check(request)
        except OrderRefused as exc:
            data = {"profile": self.profile, "command": request.command,
                    "method": request.method, "symbol": request.symbol,
                    "request_id": request.id}  # fmt: skip
            self.bus.publish(Decision("scope", "deny", exc.code or "BAD_PARAM", exc.message, data))
            raise

    def _check(self, request: Request) -> None:
        scope = method_scope(request.method)
        if scope is None:
            self._deny(
                "SCOPE_UNMAPPED_METHOD",
                f"{request.method} is not an exchange method perpbot has a scope for, so no "
                f"profile may call it (command {request.command!r}, {self._who()}); the "
                "methods and their scopes are listed in docs/keys.md",
                request,
            )
        allowed = PAPER_SCOPES if self.grant is None else self.grant.scopes_for(request.command)
        if request.method == "create_order":
            order = wire_order(request, self.exchange, self._hedged())
            self._same_symbol(request, order.symbol)
            self._check_order(request, order, allowed)
            if self.grant is not None:
                self._check_symbol(request, order.symbol)
                if not order.closes:
                    self._check_notional(request, order)
            return
        if not covers(allowed, scope):
            self._missing(request, scope, allowed)
        if request.method == "set_leverage":
            leverage, symbol = wire_leverage(request)
        elif request.method == "set_margin_mode":
            leverage, symbol = None, wire_margin_mode(request)[1]
        elif request.method == ALGO_ORDER:  # a conditional order: the grant's symbols too
            leverage, symbol = None, _algo_symbol(request)
        else:
            return
        self._same_symbol(request, symbol)
        if self.grant is not None:
            self._check_symbol(request, symbol)
            if leverage is not None:
                self._check_leverage(request, leverage, symbol)

    def _same_symbol(self, request: Request, sent: str) -> None:
        """The request's ``symbol`` (what the other layers and the log go by) must name the
        market the call is sent to."""
        if request.symbol is not None and self._unified(request.symbol) != self._unified(sent):
            raise OrderRefused(
                f"{request.method}: symbol={request.symbol!r} but the call is sent for "
                f"{sent!r}; refused rather than judge one market and trade another",
                code="BAD_SYMBOL",
            )

    def _check_order(self, request: Request, order: WireOrder, allowed: frozenset[str]) -> None:
        if TRADE in allowed:
            return
        if REDUCE not in allowed:
            self._missing(request, REDUCE if order.closes else TRADE, allowed, order)
        hint = grant_hint(self.profile, request.command, [TRADE])
        lead = (
            f"{self._who()} may only reduce positions with command {request.command!r} "
            f"(scope reduce, not trade)"
        )
        what = f"{request.method} {order.symbol} {order.side} {_fmt(order.amount)}"
        if order.position_side in HEDGE_SIDES:
            what += f" positionSide {order.position_side}"
        if not order.closes:  # reduce-only, or a hedge-mode close (SELL LONG, BUY SHORT)
            self._deny(
                "SCOPE_REDUCE_ONLY",
                f"{lead}, and this order ({what}) is not reduce-only; to let "
                f"{request.command} open or increase positions: {hint}",
                request,
                missing=[TRADE],
                fix=hint,
            )
        symbol = self._unified(order.symbol)
        view = self._view()
        if view is None:
            self._deny(
                "SCOPE_POSITION_UNKNOWN",
                f"{lead}, and the position in {symbol} has not been read yet, so perpbot "
                f"cannot tell whether this order ({what}) would grow it; fetch the positions "
                "first (the runner's reconcile does), or to allow any order: " + hint,
                request,
                missing=[TRADE],
                fix=hint,
            )
        position_side = order.position_side
        position = view.position(symbol or "", position_side)
        side = order.side if order.side in ("buy", "sell") else ""
        room = (
            view.reduce_only_room(symbol or "", side, position_side=position_side) if side else 0.0
        )
        amount = order.amount or 0.0
        if not side or amount <= 0 or amount > room + _EPS:
            held = "long" if position > 0 else "short" if position < 0 else "no"
            self._deny(
                "SCOPE_REDUCE_EXCEEDS",
                f"{lead}: this reduce-only {order.side} of {_fmt(amount)} {symbol} could grow "
                f"the position ({held} {_fmt(abs(position))}, room left after the other "
                f"reduce-only orders on that side: {_fmt(room)}); to allow it: {hint}",
                request,
                missing=[TRADE],
                fix=hint,
            )

    def _check_symbol(self, request: Request, symbol: str | None) -> None:
        limits = self.grant.limits if self.grant is not None else None
        if limits is None or limits.symbols is None:
            return
        unified = self._unified(symbol)
        allowed = set(limits.symbols) | {self._unified(s) for s in limits.symbols}
        if symbol is not None and (symbol in allowed or unified in allowed):
            return
        wanted = ",".join([*limits.symbols, unified or "SYMBOL"])
        fix = f"perpbot keys scope {self._profile_arg()} --symbols {wanted}"
        only = ", ".join(limits.symbols) or "no symbol"
        self._deny(
            "SCOPE_SYMBOL",
            f"{self._who()} may trade only {only}, not {unified or 'an unnamed symbol'} "
            f"({request.method}); to allow it: {fix}",
            request,
            fix=fix,
        )

    def _check_notional(self, request: Request, order: WireOrder) -> None:
        """Value the order at the worst price it may fill at: the highest of its limit (or
        the price the strategy decided on) and the mark/index perpbot knows. A buy limit
        fills at its limit or better, so it alone may value a buy limit; a sell limit or a
        market order may fill at the market, which must then be known."""
        limit = self.grant.limits.max_notional if self.grant is not None else None
        if limit is None:
            return
        symbol = self._unified(order.symbol) or order.symbol
        market = [p for p in self._market_prices(symbol) if p > 0]
        if order.price_match is not None:
            own, how = self._matched(request, order, market)
            if own is None:
                self._deny(
                    "SCOPE_NOTIONAL_UNKNOWN",
                    f"{self._who()} limits orders to {limit:g} notional, and this priceMatch "
                    f"{order.price_match} {order.side} of {symbol} cannot be valued: {how}; "
                    "read the book (ctx does before it sends) or the mark first",
                    request,
                )
            bounded_by_own = True  # the book's level, or the highest price Binance accepts
        else:
            how = ""
            own = order.price
            if own is None and request.order is not None:
                own = _number(request.order.decided_price)
            bounded_by_own = order.type == "limit" and order.side == "buy"
        if not market and not (bounded_by_own and own):
            self._deny(
                "SCOPE_NOTIONAL_UNKNOWN",
                f"{self._who()} limits orders to {limit:g} notional, and no mark price of "
                f"{symbol} is known yet to value this {order.type} {order.side} against (a "
                "decided or limit price alone is not trusted); read the market first (the "
                "runner does, or fetch_positions)",
                request,
            )
        price = max([*market, *([own] if own else [])])
        if order.price_match is not None:
            how = f" (priceMatch {order.price_match}: {how}, or the mark if higher)"
        notional = abs(order.amount) * price * self._contract_size(order.symbol)
        if notional > limit * (1 + _EPS):
            fix = f"perpbot keys scope {self._profile_arg()} --max-notional {math.ceil(notional)}"
            self._deny(
                "SCOPE_MAX_NOTIONAL",
                f"{self._who()} allows orders up to {limit:g} notional; this {order.side} "
                f"{_fmt(order.amount)} {symbol} valued at {price:g}{how} is {notional:g}; to raise "
                f"the limit: {fix}",
                request,
                fix=fix,
            )

    def _matched(
        self, request: Request, order: WireOrder, market: list[float]
    ) -> tuple[float | None, str]:
        """The price a priceMatch order is valued at (perpbot.client.price_match)."""
        spec = request.order
        return valuation(
            spec.match_price if spec is not None else None,
            spec.match_at if spec is not None else None,
            find_market(self.exchange, order.symbol),
            market,
            time.time(),
        )

    def _market_prices(self, symbol: str) -> list[float]:
        """The mark and index prices known for ``symbol``: the run's (marks, the risk
        layer's index) and the marks of positions seen passing through this gate."""
        found = [self._seen_marks.get(symbol)]
        if self.prices is not None:
            found.extend(self.prices(symbol))
        return [p for p in found if p is not None and math.isfinite(p)]

    def _check_leverage(self, request: Request, leverage: float, symbol: str) -> None:
        limit = self.grant.limits.max_leverage if self.grant is not None else None
        if limit is None:
            return
        if leverage > limit * (1 + _EPS):
            fix = f"perpbot keys scope {self._profile_arg()} --max-leverage {_fmt(leverage)}"
            self._deny(
                "SCOPE_MAX_LEVERAGE",
                f"{self._who()} allows leverage up to {limit:g}; set_leverage asked for "
                f"{_fmt(leverage)} on {self._unified(symbol)}; to raise the limit: {fix}",
                request,
                fix=fix,
            )

    # -- helpers ----------------------------------------------------------------------------
    def _who(self) -> str:
        return f"profile {self.profile!r}" if self.profile else "the paper account"

    def _profile_arg(self) -> str:
        return shlex.quote(self.profile or "PROFILE")

    def _unified(self, symbol: str | None) -> str | None:
        """ccxt accepts market ids (BTCUSDT) as well as symbols: judge the unified one."""
        market = find_market(self.exchange, symbol)
        found = market.get("symbol") if market is not None else None
        return str(found) if found else symbol

    def _contract_size(self, symbol: str | None) -> float:
        market = find_market(self.exchange, symbol)
        size = _number(market.get("contractSize")) if market is not None else None
        return size if size and size > 0 else 1.0

    def _missing(
        self,
        request: Request,
        scope: str,
        allowed: frozenset[str],
        order: WireOrder | None = None,
    ) -> None:
        have = ",".join(sorted(allowed, key=SCOPES.index)) or "nothing"
        fix = grant_hint(self.profile, request.command, [scope])
        what = request.describe()
        if order is not None:
            what = f"{what} {order.side} {_fmt(order.amount)}"
        extra = " (or trade)" if scope == REDUCE else ""
        self._deny(
            "SCOPE_MISSING",
            f"{self._who()} may not use scope {scope}{extra} for command {request.command!r} "
            f"({what}): its grant for {request.command} allows: {have}; to grant it: {fix}",
            request,
            missing=[scope],
            fix=fix,
        )

    def _deny(
        self,
        code: str,
        sentence: str,
        request: Request,
        *,
        missing: list[str] | None = None,
        fix: str | None = None,
    ) -> None:
        data: dict[str, Any] = {
            "profile": self.profile,
            "command": request.command,
            "method": request.method,
            "symbol": request.symbol,
            "request_id": request.id,
        }
        if missing:
            data["missing"] = missing
        if fix:
            data["fix"] = fix
        raise denial(code, sentence, bus=self.bus, data=data)


def scope_gate(setup: Setup, exchange: Any) -> ScopeGate:
    """The ScopeGate for a pipeline (always on: paper accounts get the paper grant)."""
    return ScopeGate(
        grant=setup.credentials.grant,
        profile=setup.profile,
        bus=setup.bus,
        account=setup.account,
        exchange=exchange,
        prices=lambda symbol: _run_prices(setup, symbol),
    )


def _run_prices(setup: Setup, symbol: str) -> list[float | None]:
    """The mark the run last read and the risk layer's index price (when they exist)."""
    marks = setup.marks() if setup.marks is not None else {}
    return [marks.get(symbol), *(reference(symbol) for reference in setup.reference_prices)]
