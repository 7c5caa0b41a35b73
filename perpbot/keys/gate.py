"""ScopeGate: the pipeline layer that refuses, before any request, what a grant does not cover.

For every request: the method must map to a scope (an unmapped method is denied), the
profile's grant for the request's command must cover that scope, and the profile's limits
(symbols, max order notional, max leverage) must hold. Orders are judged by the arguments
that will actually be sent, not by the OrderSpec describing them.

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
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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

_ORDER_ARGS = ("symbol", "type", "side", "amount", "price")
_EPS = 1e-9


@dataclass(frozen=True)
class OrderArgs:
    """A create_order call as ccxt will send it."""

    symbol: str | None
    type: str | None
    side: str | None
    amount: float | None
    price: float | None
    reduce_only: bool


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() == "true")


def order_args(request: Request) -> OrderArgs:
    bound: dict[str, Any] = dict(zip(_ORDER_ARGS, request.args, strict=False))
    for name in _ORDER_ARGS:
        if name in request.kwargs:
            bound[name] = request.kwargs[name]
    params = request.params
    if len(request.args) > len(_ORDER_ARGS) and isinstance(request.args[5], dict):
        params = {**request.args[5], **params}
    side = bound.get("side")
    return OrderArgs(
        symbol=bound.get("symbol") or request.symbol,
        type=str(bound["type"]).lower() if bound.get("type") else None,
        side=str(side).lower() if side else None,
        amount=_number(bound.get("amount")),
        price=_number(bound.get("price")),
        reduce_only=_truthy(params.get("reduceOnly")),
    )


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
    ) -> None:
        self.grant = grant
        self.profile = profile
        self.bus = bus
        self.account = account
        self.exchange = exchange
        self._seen: AccountView | None = None  # positions from answers that passed the gate

    def passes(self, request: Request) -> bool:
        """Whether every request of this method and command is allowed whatever its
        arguments (the grant is fixed for the gate's life): the pipeline then routes them
        past the gate. Orders, leverage changes (symbol and leverage limits) and position
        reads (remembered for reduce-only judgement) are judged one by one."""
        if request.method in ("create_order", "fetch_positions"):
            return False
        scope = method_scope(request.method)
        if scope is None or scope == LEVERAGE:
            return False
        allowed = PAPER_SCOPES if self.grant is None else self.grant.scopes_for(request.command)
        return covers(allowed, scope)

    def __call__(self, request: Request, call_next: CallNext) -> Awaitable[Any]:
        # a plain def for everything but positions (see perpbot.client.pipeline)
        self.check(request)
        if request.method == "fetch_positions":
            return self._positions(request, call_next)
        return call_next(request)

    async def _positions(self, request: Request, call_next: CallNext) -> Any:
        result = await call_next(request)
        if isinstance(result, list):
            self._note_positions(request, result)
        return result

    def _note_positions(self, request: Request, positions: list[Any]) -> None:
        """Remember the positions an answer showed, for commands without a runner (a
        ``kill --direct`` reads positions before it flattens) whose shared AccountView is
        never refreshed. Only positions: open reduce-only orders are the exchange's to cap."""
        from perpbot.client.account import AccountView

        fresh = AccountView()
        fresh.set_positions([p for p in positions if isinstance(p, dict)])
        wanted = request.args[0] if request.args else request.kwargs.get("symbols")
        if self._seen is None or not wanted:
            self._seen = fresh
            return
        names = {self._unified(s) for s in wanted if isinstance(s, str)}
        kept = {s: a for s, a in self._seen.positions.items() if s not in names}
        self._seen.positions = {**kept, **fresh.positions}
        self._seen.updated_at = fresh.updated_at

    def _view(self) -> AccountView | None:
        """The account knowledge to judge reduce-only orders by (None: nothing known)."""
        if self.account.updated_at:
            return self.account
        return self._seen

    # -- the checks -------------------------------------------------------------------------
    def check(self, request: Request) -> None:
        """Raise PermissionDenied (and publish the denial) unless the request is allowed."""
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
            order = order_args(request)
            self._check_order(request, order, allowed)
            if self.grant is not None:
                self._check_symbol(request, order.symbol)
                if not order.reduce_only:
                    self._check_notional(request, order)
            return
        if not covers(allowed, scope):
            self._missing(request, scope, allowed)
        if self.grant is not None and scope == LEVERAGE:
            self._check_symbol(request, self._arg_symbol(request))
            if request.method == "set_leverage":
                self._check_leverage(request)

    def _check_order(self, request: Request, order: OrderArgs, allowed: frozenset[str]) -> None:
        if TRADE in allowed:
            return
        if REDUCE not in allowed:
            self._missing(request, REDUCE if order.reduce_only else TRADE, allowed, order)
        hint = grant_hint(self.profile, request.command, [TRADE])
        lead = (
            f"{self._who()} may only reduce positions with command {request.command!r} "
            f"(scope reduce, not trade)"
        )
        what = f"{request.method} {order.symbol} {order.side} {_fmt(order.amount)}"
        if not order.reduce_only:
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
        position = view.position(symbol or "")
        side = order.side if order.side in ("buy", "sell") else ""
        room = view.reduce_only_room(symbol or "", side) if side else 0.0
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

    def _check_notional(self, request: Request, order: OrderArgs) -> None:
        limit = self.grant.limits.max_notional if self.grant is not None else None
        if limit is None:
            return
        price = order.price
        if price is None and request.order is not None:
            price = _number(request.order.decided_price)
        if price is None or order.amount is None:
            self._deny(
                "SCOPE_NOTIONAL_UNKNOWN",
                f"{self._who()} limits orders to {limit:g} notional, and this "
                f"{order.type or ''} order on {order.symbol} has no price to check it "
                "against (give a limit price, or decide on a seen price)",
                request,
            )
        notional = abs(order.amount or 0.0) * (price or 0.0) * self._contract_size(order.symbol)
        if notional > limit * (1 + _EPS):
            fix = f"perpbot keys scope {self._profile_arg()} --max-notional {math.ceil(notional)}"
            self._deny(
                "SCOPE_MAX_NOTIONAL",
                f"{self._who()} allows orders up to {limit:g} notional; this {order.side} "
                f"{_fmt(order.amount)} {order.symbol} at {price:g} is {notional:g}; to raise "
                f"the limit: {fix}",
                request,
                fix=fix,
            )

    def _check_leverage(self, request: Request) -> None:
        limit = self.grant.limits.max_leverage if self.grant is not None else None
        if limit is None:
            return
        raw = request.args[0] if request.args else request.kwargs.get("leverage")
        leverage = _number(raw)
        if leverage is None or leverage > limit * (1 + _EPS):
            fix = f"perpbot keys scope {self._profile_arg()} --max-leverage {_fmt(leverage)}"
            self._deny(
                "SCOPE_MAX_LEVERAGE",
                f"{self._who()} allows leverage up to {limit:g}; set_leverage asked for "
                f"{_fmt(leverage)} on {request.symbol}; to raise the limit: {fix}",
                request,
                fix=fix,
            )

    # -- helpers ----------------------------------------------------------------------------
    def _who(self) -> str:
        return f"profile {self.profile!r}" if self.profile else "the paper account"

    def _profile_arg(self) -> str:
        return shlex.quote(self.profile or "PROFILE")

    @staticmethod
    def _arg_symbol(request: Request) -> str | None:
        if len(request.args) > 1 and isinstance(request.args[1], str):
            return request.args[1]
        return request.kwargs.get("symbol") or request.symbol

    def _unified(self, symbol: str | None) -> str | None:
        """ccxt accepts market ids (BTCUSDT) as well as symbols: judge the unified one."""
        if symbol is None or self.exchange is None:
            return symbol
        markets = getattr(self.exchange, "markets", None) or {}
        if symbol in markets:
            return symbol
        by_id = getattr(self.exchange, "markets_by_id", None) or {}
        found = by_id.get(symbol)
        if isinstance(found, list) and found:
            found = found[0]
        if isinstance(found, dict) and found.get("symbol"):
            return str(found["symbol"])
        return symbol

    def _contract_size(self, symbol: str | None) -> float:
        markets = getattr(self.exchange, "markets", None) or {}
        market = markets.get(self._unified(symbol) or "")
        size = _number(market.get("contractSize")) if isinstance(market, dict) else None
        return size if size and size > 0 else 1.0

    def _missing(
        self,
        request: Request,
        scope: str,
        allowed: frozenset[str],
        order: OrderArgs | None = None,
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
    )
