"""RiskGate: the pipeline layer that runs the pre-trade checks on every order.

    KillGate -> ScopeGate -> RiskGate -> RateLimiter -> Retrier -> Transport

For ``create_order`` it builds a ``CheckInput`` from what the bot knows (the AccountView,
the index basket, the rate windows, margin brackets), runs ``pretrade.CHECKS`` and either
refuses (a ``Decision(layer="risk", action="reject")`` on the bus, then ``RiskRejected``
with the same sentence and code) or sends the order with its flags made consistent:
``reduceOnly`` and ``postOnly`` always reach ccxt when the order says so. While the order
is in flight it is reserved in the AccountView so that concurrent reduce-only orders
cannot together exceed the position. Cancels are counted for the cancel-rate limit and
never refused: a cancel only ever lowers risk.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING, Any

import ccxt

from perpbot.client.account import OpenOrder
from perpbot.client.orders import strategy_prefix
from perpbot.client.pipeline import CallNext
from perpbot.client.position_side import leg, leg_key, leg_symbol
from perpbot.client.price_match import BOOK_LEVEL, valuation
from perpbot.client.request import OrderSpec, Request
from perpbot.client.validate import find_market, wire_leverage, wire_margin_mode, wire_order
from perpbot.config import RiskSection, StrategyFile
from perpbot.errors import PerpbotError, RiskRejected
from perpbot.events import Decision
from perpbot.risk.defaults import needs_defaults, paper_defaults
from perpbot.risk.inputs import CheckInput, MarginInput, RateCounts, Rejection, describe
from perpbot.risk.margin import AccountMargin, Brackets, Holding
from perpbot.risk.pretrade import run_checks
from perpbot.risk.state import RiskState

if TYPE_CHECKING:
    from perpbot.client.setup import Setup

# Commands whose orders the gate never judges: the kill switch must always be able to
# flatten, and market-data clients (index sources, dashboards) place no orders. Inside a run,
# the kill switch's own reduce-only orders (intent "kill-...", perpbot.kill.flatten) pass
# unjudged too: they follow a cancel-all whose fills the AccountView cannot know yet.
EXEMPT_COMMANDS = frozenset({"kill", "index", "status"})
EXEMPT_INTENT_PREFIX = "kill"
BOOK_MAX_AGE_S = 30.0
DEFAULT_LEVERAGE = 20.0  # Binance's default, used until the symbol's leverage is read


class RateWindows:
    """Timestamps of sent orders and cancels, per symbol and for the bot."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._orders: dict[str, deque[float]] = {}
        self._cancels: dict[str, deque[float]] = {}

    def _prune(self, q: deque[float], now: float) -> int:
        edge = now - self.window_s
        while q and q[0] <= edge:
            q.popleft()
        return len(q)

    def record(self, kind: str, symbol: str | None, now: float) -> None:
        table = self._orders if kind == "order" else self._cancels
        for key in ("*", symbol) if symbol else ("*",):
            table.setdefault(key, deque()).append(now)

    def counts(self, symbol: str, now: float) -> RateCounts:
        found = []
        for table, key in (
            (self._orders, symbol),
            (self._orders, "*"),
            (self._cancels, symbol),
            (self._cancels, "*"),
        ):
            q = table.get(key)
            found.append(self._prune(q, now) if q else 0)
        return RateCounts(*found)


def spec_from_request(
    request: Request, exchange: Any = None, hedged: bool | None = None
) -> OrderSpec:
    """The OrderSpec the risk checks judge: the ``create_order`` call as it will be sent
    (arguments with params laid over them, ``perpbot.client.validate``). A request built
    from a spec keeps it: ``wire_order`` has checked that it says what is sent."""
    wire = wire_order(request, exchange, hedged)
    if request.order is not None:
        return request.order
    return OrderSpec(
        symbol=wire.symbol,
        side=wire.side,  # type: ignore[arg-type]
        type=wire.type,  # type: ignore[arg-type]
        amount=wire.amount,
        price=wire.price,
        post_only=wire.post_only,
        reduce_only=wire.reduce_only,
        time_in_force=wire.time_in_force,
        client_order_id=wire.client_order_id,
        intent=request.intent,
        position_side=leg(wire.position_side),
        price_match=wire.price_match,
    )


def make_flags_consistent(request: Request, spec: OrderSpec) -> None:
    """The order's flags, exactly once, in the params ccxt sends."""
    if len(request.args) > 5:  # params given positionally: move them (ccxt takes one)
        request.kwargs["params"] = dict(request.args[5])
        request.args = request.args[:5]
    params = request.kwargs.get("params")
    if not isinstance(params, dict):
        params = request.kwargs["params"] = {}
    if spec.reduce_only:
        params["reduceOnly"] = True
    else:
        params.pop("reduceOnly", None)
    if spec.post_only:
        params["postOnly"] = True
        if str(params.get("timeInForce", "GTX")).upper() not in ("GTX", "PO"):
            params.pop("timeInForce", None)
    if spec.client_order_id:
        params["clientOrderId"] = spec.client_order_id
    if leg(spec.position_side) is not None:
        params["positionSide"] = spec.position_side


def _refusal_is_certain(exc: BaseException) -> bool:
    """Did the exchange (or a guard) refuse for sure, so that no order can exist?"""
    if isinstance(exc, PerpbotError):
        return True

    certain = (
        ccxt.InvalidOrder,
        ccxt.InsufficientFunds,
        ccxt.BadRequest,
        ccxt.BadSymbol,
        ccxt.AuthenticationError,
        ccxt.PermissionDenied,
        ccxt.ArgumentsRequired,
    )
    return isinstance(exc, certain)


_SETTINGS = ("set_leverage", "set_margin_mode")
_JUDGED = frozenset({"create_order", *_SETTINGS})


class RiskGate:
    name = "risk"

    def __init__(self, setup: Setup, exchange: Any, config: StrategyFile) -> None:
        self.setup = setup
        self.exchange = exchange
        self.cfg: RiskSection = config.risk
        self.state = RiskState(config, marks=setup.marks or dict)
        self.windows = RateWindows(self.cfg.rate_window_s)
        self._flat = Brackets.flat(self.cfg.maint_margin_ratio)
        self._contract: dict[str, float] = {}
        self._own_prefix: str | None = None
        if setup.in_run:
            self._own_prefix = strategy_prefix(config.strategy.name)
        setup.reference_prices.append(self.state.reference)  # the ScopeGate values orders
        self._defaults_pending = needs_defaults(config)  # paper, no limits: derive them

    # -- the layer --------------------------------------------------------------------------
    def passes(self, request: Request) -> bool:
        """Reads and other calls that are neither orders, cancels nor account settings
        pass untouched (the pipeline routes them past the gate)."""
        return not (request.method in _JUDGED or request.method_class == "cancel")

    async def __call__(self, request: Request, call_next: CallNext) -> Any:
        method = request.method
        if method == "create_order":
            return await self._order(request, call_next)
        if request.method_class == "cancel":
            return await self._cancel(request, call_next)
        if method in _SETTINGS:  # tracked under the symbol it is sent for
            sent = (wire_leverage if method == "set_leverage" else wire_margin_mode)(request)[1]
            market = find_market(self.exchange, sent)
            symbol = str(market["symbol"]) if market and market.get("symbol") else sent
            return await self._account_setting(request, call_next, request.symbol or symbol)
        return await call_next(request)

    async def _cancel(self, request: Request, call_next: CallNext) -> Any:
        self.windows.record("cancel", request.symbol, time.time())
        result = await call_next(request)
        if request.method == "cancel_order" and isinstance(result, dict):
            self.setup.account.order_closed(result)  # its final fill is in the answer
        return result

    async def _account_setting(self, request: Request, call_next: CallNext, symbol: str) -> Any:
        key = "leverage" if request.method == "set_leverage" else "margin_mode"
        if key == "leverage":  # as sent (the ScopeGate has refused what cannot be judged)
            value: Any = wire_leverage(request)[0]
        else:
            value = wire_margin_mode(request)[0]
        asked = self.state.own_requests.setdefault(symbol, {})
        asked["at"] = time.time()
        asked[key] = float(value) if key == "leverage" and value is not None else value
        if key == "margin_mode" and value is not None:
            asked[key] = "cross" if str(value).lower() in ("cross", "crossed") else "isolated"
        result = await call_next(request)
        asked["at"] = time.time()
        if key == "leverage" and value is not None:
            self.state.leverage[symbol] = float(value)
        elif value is not None:
            self.state.margin_mode[symbol] = asked[key]
        return result

    async def _order(self, request: Request, call_next: CallNext) -> Any:
        account = self.setup.account
        spec = request.order = spec_from_request(request, self.exchange, account.hedged)
        now = time.time()
        kill = spec.closes and (spec.intent or "").startswith(EXEMPT_INTENT_PREFIX)
        if not kill:
            if self._defaults_pending:
                self._apply_defaults(spec)
            rejection = run_checks(self.check_input(spec, now), self.cfg)
            self.state.checked += 1
            if rejection is not None:
                self._reject(rejection)
        make_flags_consistent(request, spec)
        self.windows.record("order", spec.symbol, now)
        cid = spec.client_order_id
        if cid:
            account.reserve(
                cid,
                spec.symbol,
                spec.side,
                spec.amount,
                reduce_only=spec.reduce_only,
                position_side=spec.position_side,
            )
        try:
            result = await call_next(request)
        except BaseException as exc:
            if cid:
                account.release(cid, known=_refusal_is_certain(exc))
            raise
        if isinstance(result, dict):
            account.order_placed(result)
        return result

    def _apply_defaults(self, spec: OrderSpec) -> None:
        """A paper run without notional limits: conservative ones from the balance, once,
        with a warning naming them (perpbot.risk.defaults)."""
        balance = self.setup.account.equity
        if balance is None or balance <= 0:
            self._reject(
                Rejection(
                    "defaults",
                    "RISK_NO_LIMITS",
                    "no [risk] limits are set and the balance is not known yet, so the paper "
                    f"defaults cannot be derived: refused {describe(spec)}",
                    {"symbol": spec.symbol},
                )
            )
        self.cfg, warning = paper_defaults(self.cfg, float(balance or 0.0))
        self._defaults_pending = False
        # a "warn" decision: the run's output prints it on stderr (engine/output.py)
        self.setup.bus.publish(Decision("risk", "warn", "RISK_DEFAULT_LIMITS", warning, {}))

    def _reject(self, r: Rejection) -> None:
        data = {"check": r.check, **r.data}
        self.state.rejections.append({"ts": time.time(), "code": r.code, "sentence": r.sentence})
        self.setup.bus.publish(Decision("risk", "reject", r.code, r.sentence, data))
        raise RiskRejected(r.sentence, code=r.code)

    # -- what the checks see ------------------------------------------------------------------
    def _own(self, o: OpenOrder) -> bool:
        """This bot's order (its client ids carry its strategy's tag: this run's, or an
        earlier run's it adopted at start), or one it is sending."""
        prefix = self._own_prefix
        return prefix is None or o.inflight or (o.client_order_id or "").startswith(prefix)

    def _contract_size(self, symbol: str) -> float:
        size = self._contract.get(symbol)
        if size is None:
            try:
                size = float(self.exchange.market(symbol).get("contractSize") or 1.0)
            except Exception:
                return 1.0  # markets not loaded yet: judge in base units, ask again next time
            self._contract[symbol] = size
        return size

    def prices(self, symbol: str | None = None) -> dict[str, float]:
        """Reference price per symbol: the healthy index where there is one, else the mark."""
        state = self.state
        prices: dict[str, float] = dict(state.marks())
        for sym in [*state.index, *([symbol] if symbol else [])]:
            ref = state.reference(sym)
            if ref is not None:
                prices[sym] = ref
        return prices

    def check_input(self, spec: OrderSpec, now: float) -> CheckInput:
        account = self.setup.account
        state = self.state
        symbol = spec.symbol
        index, note = state.index_price(symbol)
        prices = self.prices(symbol)
        side = spec.position_side
        match_price, from_book = None, False
        if spec.price_match:
            marks = [p for p in (state.marks().get(symbol), prices.get(symbol)) if p]
            market = find_market(self.exchange, symbol)
            match_price, how = valuation(spec.match_price, spec.match_at, market, marks, now)
            from_book = how == BOOK_LEVEL
        return CheckInput(
            spec=spec,
            now=now,
            position=account.position(symbol, side),
            positions=account.positions,
            legs=account.legs,
            prices=prices,
            index=index,
            index_note=note,
            orders=[o for o in account.orders.values() if self._own(o)],
            reduce_only_room=account.reduce_only_room(symbol, spec.side, position_side=side),
            reduce_only_unsettled=account.reduce_only_debit.get(leg_key(symbol, side), 0.0),
            equity=account.equity,
            rates=self.windows.counts(symbol, now),
            reduce_only_reason=state.reduce_only_reason(symbol),
            margin=self._margin_input(symbol, prices, now),
            contract_size=self._contract_size(symbol),
            match_price=match_price,
            match_from_book=from_book,
        )

    def _margin_input(
        self, symbol: str, prices: dict[str, float], now: float
    ) -> MarginInput | None:
        if self.cfg.liquidation_band_pct is None:
            return None
        return self.margin_snapshot(symbol, prices, now)

    def margin_snapshot(
        self, symbol: str, prices: dict[str, float], now: float
    ) -> MarginInput | None:
        """The account's margin as the bot knows it (None until equity and marks are); on a
        hedge-mode account the holdings are its sides (by ``leg_key``)."""
        account, state = self.setup.account, self.state
        marks = state.marks()
        mark = marks.get(symbol) or prices.get(symbol)
        if account.equity is None or mark is None:
            return None
        flat = self._flat
        leverage = {**account.leverage, **state.leverage}
        holdings = {}
        held = account.legs if account.hedged else account.positions
        for key, amount in held.items():
            sym = leg_symbol(key)
            m = marks.get(sym) or prices.get(sym)
            if m is None:
                return None
            entry = account.entry_prices.get(key, m)
            lev = leverage.get(sym) or DEFAULT_LEVERAGE
            holdings[key] = Holding(amount, entry, m, lev, state.brackets.get(sym, flat))
        order_margin = 0.0
        for o in account.orders.values():
            if not o.closes:
                px = o.price or prices.get(o.symbol, 0.0)
                order_margin += o.remaining * px / (leverage.get(o.symbol) or DEFAULT_LEVERAGE)
        snap = state.books.get(symbol)
        fresh = snap is not None and now - snap.ts <= BOOK_MAX_AGE_S
        return MarginInput(
            account=AccountMargin(account.equity, holdings, order_margin),
            mark=mark,
            leverage=leverage.get(symbol) or DEFAULT_LEVERAGE,
            brackets=state.brackets.get(symbol, flat),
            bids=snap.bids if fresh and snap else None,
            asks=snap.asks if fresh and snap else None,
        )


def build_risk_gate(setup: Setup, exchange: Any) -> RiskGate | None:
    """The RiskGate for this command, or None when it has nothing to judge."""
    cfg = setup.config
    if cfg is None or not cfg.risk.enabled or setup.command in EXEMPT_COMMANDS:
        return None
    return RiskGate(setup, exchange, cfg)
