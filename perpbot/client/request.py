"""What flows through the pipeline: a Request (and, for orders, an OrderSpec)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

from perpbot.client.headers import Usage, read_rate_headers
from perpbot.client.position_side import closes

MethodClass = Literal["read", "order", "cancel", "account", "other"]

# ccxt methods the client may call, by what they do. Retry policy and scopes key off this;
# a method not listed here is not callable through the pipeline at all.
METHOD_CLASS: dict[str, MethodClass] = {
    "load_markets": "read",
    "fetch_time": "read",
    "fetch_ticker": "read",
    "fetch_tickers": "read",
    "fetch_order_book": "read",
    "fetch_open_interest": "read",
    "fetch_ohlcv": "read",
    "fetch_funding_rate": "read",
    "fetch_mark_price": "read",
    "fetch_balance": "read",
    "fetch_positions": "read",
    "fetch_order": "read",
    "fetch_open_orders": "read",
    "fetch_my_trades": "read",
    "fetch_funding_history": "read",
    "fetch_leverage_tiers": "read",
    "fetch_margin_mode": "read",
    "fetch_position_mode": "read",
    "fapipublic_get_constituents": "read",  # the index's venues and weights (risk stress)
    "sapi_get_account_apirestrictions": "read",
    "create_order": "order",
    "cancel_order": "cancel",
    "cancel_all_orders": "cancel",
    "fapiprivate_post_countdowncancelall": "cancel",
    "set_leverage": "account",
    "set_margin_mode": "account",
    # conditional orders: Binance's Algo Order API (perpbot.engine.conditional)
    "fapiprivate_post_algoorder": "order",
    "fapiprivate_get_openalgoorders": "read",
    "fapiprivate_get_algoorder": "read",
    "fapiprivate_delete_algoorder": "cancel",
    "fapiprivate_delete_algoopenorders": "cancel",
    # the account's liquidation and ADL orders: an unnamed fill's order (engine.reconcile)
    "fapiprivate_get_forceorders": "read",
    # the REST a ccxt.pro stream makes of its own (the listenKey, the order-book snapshot):
    # only the paths of ``STREAM_REST`` (perpbot.client.transport); the user stream's
    # listenKey must pass a kill switch (the run watches its cancels confirmed on it)
    "stream_rest": "read",
}


# Set while the kill switch (or another risk-reducing sequence) runs: every request made in
# that context, its lookups included, reduces risk (``Request.risk_reducing``).
_REDUCING_RISK: ContextVar[bool] = ContextVar("perpbot_reducing_risk", default=False)


@contextlib.contextmanager
def reducing_risk() -> Iterator[None]:
    """Mark every request made inside (this task and the tasks it starts) as reducing risk:
    the rate limiter lets them draw on the budget's reserve (docs/ratelimit.md)."""
    token = _REDUCING_RISK.set(True)
    try:
        yield
    finally:
        _REDUCING_RISK.reset(token)


def is_reducing_risk() -> bool:
    """Whether the caller runs inside ``reducing_risk()`` (the kill switch, the stop)."""
    return _REDUCING_RISK.get()


@dataclass
class OrderSpec:
    """An order as a strategy or command means it, before ccxt sees it.

    ``decided_price`` and ``decided_at`` record the price the decision was based on and
    when it was seen, so the risk layer can refuse decisions made on stale prices and the
    journal can measure slippage.
    """

    symbol: str
    side: Literal["buy", "sell"]
    type: Literal["limit", "market"]
    amount: float
    price: float | None = None
    post_only: bool = False
    reduce_only: bool = False
    time_in_force: str | None = None
    good_till: float | None = None  # GTD: when it expires (epoch seconds, whole seconds kept)
    client_order_id: str | None = None
    intent: str | None = None
    decided_price: float | None = None
    decided_at: float | None = None
    # hedge mode only: LONG or SHORT, the position the order acts on (perpbot.client.
    # position_side); None on a one-way account (nothing sent)
    position_side: str | None = None
    # priceMatch (LIMIT, no price): OPPONENT[_5|_10|_20] or QUEUE[_5|_10|_20]; the price the
    # book gave it when the engine read the book before sending, and when (perpbot.client.
    # price_match: what the scope and risk gates value the order at)
    price_match: str | None = None
    match_price: float | None = None
    match_at: float | None = None

    @property
    def closes(self) -> bool:
        """Reduce-only, or (hedge mode) a SELL of the LONG side or a BUY of the SHORT one:
        the order can only shrink a position, never open or grow one."""
        return self.reduce_only or closes(self.side, self.position_side)

    def ccxt_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if self.client_order_id:
            params["clientOrderId"] = self.client_order_id
        if self.position_side:
            params["positionSide"] = self.position_side
        if self.reduce_only:
            params["reduceOnly"] = True
        if self.post_only:
            params["postOnly"] = True
        if self.time_in_force and not self.post_only:
            params["timeInForce"] = self.time_in_force
        if self.good_till is not None:
            params["goodTillDate"] = good_till_ms(self.good_till)
        if self.price_match:
            params["priceMatch"] = self.price_match
        return params


def good_till_ms(seconds: float) -> int:
    """Binance's goodTillDate: milliseconds, whole seconds (it drops the rest)."""
    return int(seconds) * 1000


@dataclass(slots=True)
class HttpRecord:
    """One HTTP exchange made while serving a Request (a ccxt call may make several)."""

    http_method: str
    url: str
    path: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # its rate-limit headers
    usage: list[Usage] = field(default_factory=list)  # the usage counters they report
    retry_after: float | None = None  # the Retry-After they ask for, in seconds
    error_code: int | None = None
    charge: Any = None  # what the rate limiter charged it (its own bookkeeping)

    def read_headers(self, headers: Mapping[str, str]) -> None:
        """Keep the rate-limit headers of the response, read once (perpbot.client.headers)."""
        self.headers, self.usage, self.retry_after = read_rate_headers(headers)


@dataclass(slots=True)
class Request:
    """One exchange call, with everything a guard needs to judge it."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)
    symbol: str | None = None
    intent: str | None = None
    command: str = "run"
    profile: str | None = None
    order: OrderSpec | None = None
    id: int = 0
    http: list[HttpRecord] = field(default_factory=list)
    # what the method does (METHOD_CLASS); worked out once, every layer asks
    method_class: MethodClass = field(init=False)
    # whether it only reduces risk (a cancel, the dead-man's countdown, a reduce-only order,
    # anything the kill switch sends): the rate limiter keeps a reserve of budget for these
    risk_reducing: bool = field(init=False)
    # state a layer keeps across the attempts of this request (the retrier, the limiter)
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.method_class = METHOD_CLASS.get(self.method, "other")
        self.risk_reducing = (
            self.method_class == "cancel"
            or _REDUCING_RISK.get()
            or (self.method_class == "order" and self._reduce_only())
        )

    def _reduce_only(self) -> bool:
        """An order that can only reduce the position, by its spec (reduce-only, or a
        hedge-mode close) or its raw params (an algo order's, a raw order's): only an order
        can be reduce-only."""
        if self.order is not None and self.order.closes:
            return True
        return any(_reduce_only_params(a) for a in (self.kwargs.get("params"), *self.args))

    def serving(self, parent: Request) -> Request:
        """This request is sent on behalf of ``parent`` (a lookup, a clock resync, a rules
        re-read): it reduces risk when ``parent`` does."""
        self.risk_reducing = self.risk_reducing or parent.risk_reducing
        return self

    @property
    def params(self) -> dict[str, Any]:
        """The ccxt ``params`` dict of the call (empty when there is none)."""
        p = self.kwargs.get("params")
        return p if isinstance(p, dict) else {}

    def describe(self) -> str:
        """Short human form for sentences: 'create_order BTC/USDT:USDT'."""
        return f"{self.method} {self.symbol}" if self.symbol else self.method

    @classmethod
    def for_order(cls, spec: OrderSpec, **kw: Any) -> Request:
        return cls(
            method="create_order",
            args=(spec.symbol, spec.type, spec.side, spec.amount, spec.price),
            kwargs={"params": spec.ccxt_params()},
            symbol=spec.symbol,
            intent=spec.intent,
            order=spec,
            **kw,
        )


def _reduce_only_params(params: Any) -> bool:
    """A raw call's params that make it reduce-only (an algo order's, a raw order's): also a
    hedge-mode algo close (side SELL with positionSide LONG, BUY with SHORT)."""
    if not isinstance(params, dict):
        return False
    if any(str(params.get(k)).lower() == "true" for k in ("reduceOnly", "closePosition")):
        return True
    side, position_side = params.get("side"), params.get("positionSide")
    if not isinstance(side, str) or not isinstance(position_side, str):
        return False  # not a hedge close (a malformed one is refused at the boundary)
    return closes(side.lower(), position_side)
