"""The ``ctx`` a strategy receives: typed helpers over a port to the engine.

A strategy never holds the engine, the guarded client or the ccxt object. Each helper sends
one plain call (a method name, plain arguments) through a ``Port`` and turns the plain answer
into a typed result (perpbot.engine.results). Two ports exist:

- in-process (``[strategy] isolation = "thread"``): ``LocalPort`` calls the engine's own
  ``Context`` (perpbot.engine.context) from the strategy's worker thread;
- isolated (``isolation = "process"``): perpbot.engine.isolation's child port sends the same
  call over a Unix socket to the engine, which makes it through that same ``Context``.

Either way every call passes the whole guarded pipeline (kill switch, scope, risk, rate
limit, retry) on the engine's side. ``CALLS`` is the complete list of what may be asked.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

from perpbot.engine.results import Book, KillChange, Order, Ticker
from perpbot.engine.state import PositionSnapshot
from perpbot.engine.strategy import OrderRejected

Side = Literal["buy", "sell"]
MIN_TIMER_S = 0.05

# the engine Context's methods a strategy may call (and nothing else crosses the boundary)
CALLS = frozenset(
    {
        "log", "kill_state", "market_info", "round_price", "round_amount", "ticker",
        "order_book", "mid", "funding", "mark", "ohlcv", "position", "positions", "refresh",
        "balance", "open_orders", "limit_order", "post_only_order", "market_order",
        "reduce_only_order", "exit", "cancel_order", "cancel_all", "place_orders",
        "modify_order", "set_leverage", "set_margin_mode", "conditional_order",
        "stop_market_order", "take_profit_order", "trailing_stop_order",
        "conditional_orders", "cancel_conditional",
    }
)  # fmt: skip


def plain(value: Any) -> Any:
    """What crosses the boundary: dicts, lists, str, numbers, bool, None."""
    if isinstance(value, OrderRejected):
        return {"__rejected__": [value.code, value.sentence]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


class Port(Protocol):
    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any: ...


class LocalPort:
    """In-process: the engine's Context, called from the strategy's worker thread."""

    def __init__(self, context: Any) -> None:
        self._context = context

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        if name not in CALLS:
            raise OrderRejected("BAD_CALL", f"ctx has no call {name!r}")
        if name == "kill_state":
            return plain(self._context.kill_state)
        return plain(getattr(self._context, name)(*args, **kwargs))


@dataclasses.dataclass(frozen=True, slots=True)
class Balance:
    currency: str
    free: float
    used: float
    total: float


@dataclasses.dataclass(frozen=True, slots=True)
class MarketInfo:
    symbol: str
    tick_size: float
    step_size: float
    min_amount: float
    min_notional: float


@dataclasses.dataclass(slots=True)
class Timer:
    id: int
    due: float  # epoch seconds
    every: float | None  # None: once
    fn: Callable[[StrategyContext], Any]


def _raw(order: Any) -> Any:
    return order.raw if isinstance(order, Order) else order


def _order(d: Any) -> Any:
    return Order.of(d) if isinstance(d, dict) else d


class StrategyContext:
    """What ``on_start``, ``on_tick`` and every event callback receive as ``ctx``."""

    def __init__(self, port: Port, *, symbols: list[str], params: Any, run_id: str) -> None:
        self._port = port
        self.symbols = list(symbols)
        self.params = params
        self.run_id = run_id
        self.state: dict[str, Any] = {}  # free for the strategy's own use (see on_save)
        self.timers: dict[int, Timer] = {}
        self._next_timer_id = 1

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self._port.call(name, list(args), kwargs)

    # -- time and timers --------------------------------------------------------------------
    def now(self) -> float:
        return time.time()

    def every(self, seconds: float, fn: Callable[[StrategyContext], Any]) -> int:
        """Call ``fn(ctx)`` every ``seconds`` (>= 0.05), first ``seconds`` from now; returns
        the timer's id for ``cancel_timer``. Timers do not fire while the kill switch
        stands, and are delivered after the events and before ``on_tick`` of a cycle."""
        seconds = max(float(seconds), MIN_TIMER_S)
        return self._add(Timer(self._next_timer_id, time.time() + seconds, seconds, fn))

    def at(self, when: float, fn: Callable[[StrategyContext], Any]) -> int:
        """Call ``fn(ctx)`` once at ``when`` (epoch seconds; at once if past)."""
        return self._add(Timer(self._next_timer_id, float(when), None, fn))

    def cancel_timer(self, timer_id: int) -> bool:
        return self.timers.pop(timer_id, None) is not None

    def _add(self, timer: Timer) -> int:
        self.timers[timer.id] = timer
        self._next_timer_id += 1
        return timer.id

    # -- engine -----------------------------------------------------------------------------
    def log(self, message: str) -> None:
        """A line in the run's output, attributed to the strategy."""
        self._call("log", str(message))

    @property
    def kill_state(self) -> KillChange | None:
        """The kill switch's entry for this run, or None when it is clear."""
        d = self._call("kill_state")
        return KillChange.of(d) if d else None

    # -- market data ------------------------------------------------------------------------
    def market_info(self, symbol: str) -> MarketInfo:
        return MarketInfo(**self._call("market_info", symbol))

    def round_price(self, symbol: str, price: float) -> float:
        return float(self._call("round_price", symbol, price))

    def round_amount(self, symbol: str, amount: float) -> float:
        return float(self._call("round_amount", symbol, amount))

    def ticker(self, symbol: str) -> Ticker:
        return Ticker.of(self._call("ticker", symbol))

    def order_book(self, symbol: str, limit: int | None = 20) -> Book:
        return Book.of(self._call("order_book", symbol, limit))

    def mid(self, symbol: str) -> float:
        """Mid price from the top of the book."""
        return float(self._call("mid", symbol))

    def funding(self, symbol: str) -> dict[str, Any]:
        """Funding rate and mark/index prices (ccxt's funding-rate dict)."""
        return self._call("funding", symbol)

    def mark(self, symbol: str) -> float:
        return float(self._call("mark", symbol))

    def ohlcv(self, symbol: str, timeframe: str = "1m", limit: int = 50) -> list[list[float]]:
        return self._call("ohlcv", symbol, timeframe, limit)

    # -- account ----------------------------------------------------------------------------
    def position(self, symbol: str, position_side: str | None = None) -> PositionSnapshot:
        """The symbol's position; on a hedge-mode account its net, or with
        ``position_side`` LONG or SHORT that side's."""
        if position_side is None:
            return PositionSnapshot(**self._call("position", symbol))
        return PositionSnapshot(**self._call("position", symbol, position_side))

    def positions(self) -> dict[str, PositionSnapshot]:
        """Positions as of the engine's last reconcile."""
        return {s: PositionSnapshot(**p) for s, p in self._call("positions").items()}

    def refresh(self) -> None:
        """Reconcile now (the events it finds are delivered at the next cycle)."""
        self._call("refresh")

    def balance(self, currency: str = "USDT") -> Balance:
        return Balance(**self._call("balance", currency))

    def open_orders(self, symbol: str | None = None) -> list[Order]:
        """This run's open orders on the exchange (fetched now)."""
        return [Order.of(o) for o in self._call("open_orders", symbol)]

    # -- orders (each passes every guard of the pipeline; refusals raise OrderRejected) ----
    def limit_order(self, symbol: str, side: Side, amount: float, price: float | None = None,
                    **kw: Any) -> Order:  # fmt: skip
        """A limit order. Keywords: post_only, reduce_only, time_in_force (GTC, IOC, FOK,
        GTX, GTD), good_till (GTD's expiry, epoch seconds), intent, decided_price,
        price_match (OPPONENT[_5|_10|_20], QUEUE[_5|_10|_20]; no price: the book sets it)."""
        return Order.of(self._call("limit_order", symbol, side, amount, price, **kw))

    def post_only_order(self, symbol: str, side: Side, amount: float, price: float,
                        **kw: Any) -> Order:  # fmt: skip
        return Order.of(self._call("post_only_order", symbol, side, amount, price, **kw))

    def market_order(self, symbol: str, side: Side, amount: float, **kw: Any) -> Order:
        """A market order. Keywords: reduce_only, intent, decided_price."""
        return Order.of(self._call("market_order", symbol, side, amount, **kw))

    def reduce_only_order(self, symbol: str, side: Side, amount: float,
                          price: float | None = None, **kw: Any) -> Order:  # fmt: skip
        return Order.of(self._call("reduce_only_order", symbol, side, amount, price, **kw))

    def place_orders(self, orders: list[dict[str, Any]]) -> list[Order | OrderRejected]:
        """Batch placement (``limit_order``/``market_order`` keywords per dict); the answer
        is in the same order, an ``OrderRejected`` in place of a refused one."""
        out: list[Order | OrderRejected] = []
        for r in self._call("place_orders", orders):
            if isinstance(r, dict) and "__rejected__" in r:
                out.append(OrderRejected(*r["__rejected__"]))
            else:
                out.append(Order.of(r))
        return out

    def modify_order(self, order: Order | dict[str, Any], **kw: Any) -> Order:
        """Cancel-and-replace a resting limit order (keywords: amount, price)."""
        return Order.of(self._call("modify_order", _raw(order), **kw))

    def cancel_order(self, order: Order | dict[str, Any] | str, symbol: str | None = None) -> Any:
        """Cancel by order, exchange order id, or this run's client order id."""
        return _order(self._call("cancel_order", _raw(order), symbol))

    def cancel_all(self, symbol: str | None = None) -> None:
        """Cancel this run's open orders (others' orders stay)."""
        self._call("cancel_all", symbol)

    def exit(self, symbol: str, policy: str = "adaptive", **config: Any) -> dict[str, Any] | None:
        """Close ``symbol``'s position with an exit policy (docs/exits.md); None when flat."""
        return self._call("exit", symbol, policy, **config)

    def set_leverage(self, symbol: str, leverage: float) -> Any:
        return self._call("set_leverage", symbol, leverage)

    def set_margin_mode(self, symbol: str, mode: Literal["cross", "isolated"]) -> Any:
        return self._call("set_margin_mode", symbol, mode)

    # -- conditional orders (Algo Order API; scope ``stop``): the algo order's dict ------
    def conditional_order(self, symbol: str, side: Side, kind: str, amount: float | None = None,
                          **kw: Any) -> dict[str, Any]:  # fmt: skip
        return self._call("conditional_order", symbol, side, kind, amount, **kw)

    def stop_market_order(self, symbol: str, side: Side, trigger_price: float,
                          amount: float | None = None, **kw: Any) -> dict[str, Any]:  # fmt: skip
        return self._call("stop_market_order", symbol, side, trigger_price, amount, **kw)

    def take_profit_order(self, symbol: str, side: Side, trigger_price: float,
                          amount: float | None = None, **kw: Any) -> dict[str, Any]:  # fmt: skip
        return self._call("take_profit_order", symbol, side, trigger_price, amount, **kw)

    def trailing_stop_order(self, symbol: str, side: Side, amount: float, callback_rate: float,
                            **kw: Any) -> dict[str, Any]:  # fmt: skip
        return self._call("trailing_stop_order", symbol, side, amount, callback_rate, **kw)

    def conditional_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        return self._call("conditional_orders", symbol)

    def cancel_conditional(self, order: dict[str, Any] | str, symbol: str) -> Any:
        return self._call("cancel_conditional", order, symbol)
