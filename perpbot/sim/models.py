"""Order and trade records: the engine's source of truth, rendered by payloads.py.

Orders are never deleted: ``GET /__sim/state`` must show every order ever accepted with
its client order id, status and timestamps, because the rest of perpbot's tests assert
things like "the lost-response order exists exactly once at the exchange".
"""

from __future__ import annotations

from dataclasses import dataclass, field

OPEN_STATUSES = frozenset({"NEW", "PARTIALLY_FILLED"})


@dataclass(slots=True, eq=False)
class Order:
    order_id: int
    symbol: str
    account: str
    client_order_id: str
    side: str  # BUY | SELL
    type: str  # LIMIT | MARKET
    tif: str  # GTC | IOC | FOK | GTX | GTD
    price: int  # ticks; 0 for MARKET
    qty: int  # steps
    reduce_only: bool
    time: int
    seq: int  # time priority within a price level
    update_time: int = 0
    executed: int = 0
    cum_quote: float = 0.0
    status: str = "NEW"
    cancel_time: int | None = None
    recorded: bool = True  # False for post-only/FOK rejections Binance does not record
    reject_code: int | None = None
    orig_type: str = ""
    queue_ahead: int = 0  # crowd size displayed ahead of this resting order at its price
    position_side: str = "BOTH"  # LONG | SHORT in hedge mode
    good_till_date: int = 0  # GTD: expiry time (ms, whole seconds); 0 otherwise
    price_match: str = "NONE"  # OPPONENT[_5|_10|_20] | QUEUE[_5|_10|_20]: price set at entry

    @property
    def closing(self) -> bool:
        """Reduce-only, or (hedge mode) a SELL of the LONG side or a BUY of the SHORT one."""
        if self.reduce_only:
            return True
        return (self.position_side, self.side) in (("LONG", "SELL"), ("SHORT", "BUY"))

    @property
    def remaining(self) -> int:
        return self.qty - self.executed

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_STATUSES

    @property
    def sign(self) -> int:
        return 1 if self.side == "BUY" else -1


@dataclass(slots=True)
class Trade:
    trade_id: int
    order_id: int
    symbol: str
    account: str
    side: str
    price: int  # ticks
    qty: int  # steps
    quote_qty: float
    commission: float
    realized_pnl: float
    maker: bool
    time: int


@dataclass(slots=True)
class SimPosition:
    symbol: str
    amt: int = 0  # signed steps (a LONG side's >= 0, a SHORT side's <= 0)
    entry: float = 0.0
    isolated_wallet: float = 0.0
    update_time: int = 0
    side: str = "BOTH"  # positionSide: BOTH (one-way) | LONG | SHORT (hedge mode)


def position_key(symbol: str, side: str) -> str:
    """Key of a position in ``Account.positions``: the symbol, plus the side in hedge mode."""
    return symbol if side == "BOTH" else f"{symbol}:{side}"


@dataclass(slots=True)
class Account:
    api_key: str
    api_secret: str
    permissions: dict[str, bool]
    create_time: int
    wallet: float
    positions: dict[str, SimPosition] = field(default_factory=dict)
    leverage: dict[str, int] = field(default_factory=dict)
    margin_type: dict[str, str] = field(default_factory=dict)
    income: list[dict[str, object]] = field(default_factory=list)
    margin_history: list[dict[str, object]] = field(default_factory=list)
    update_time: int = 0
    dual_side: bool = False  # hedge mode (POST /fapi/v1/positionSide/dual)


ALGO_OPEN = frozenset({"NEW", "TRIGGERING", "TRIGGERED"})


@dataclass(slots=True, eq=False)
class AlgoOrder:
    """A conditional order held by the Algo Service until its trigger fires (Binance, 2025-12).

    ``algo_status``: NEW (waiting), TRIGGERED (placed in the matching engine as
    ``actual_order_id``), FINISHED (that order is done), CANCELED, REJECTED (the triggered
    order was refused, e.g. margin), EXPIRED (cancelled by the system).
    """

    algo_id: int
    client_algo_id: str
    account: str
    symbol: str
    side: str
    order_type: str  # STOP_MARKET | TAKE_PROFIT_MARKET | STOP | TAKE_PROFIT | TRAILING_STOP_MARKET
    qty: int  # steps; 0 with close_position
    price: int  # ticks; 0 for the *_MARKET types
    trigger_price: int  # ticks; 0 for a trailing stop without activation price
    tif: str
    working_type: str  # MARK_PRICE | CONTRACT_PRICE
    close_position: bool
    reduce_only: bool
    price_protect: bool
    create_time: int
    callback_rate: float = 0.0  # percent, trailing stops only
    activate_price: int = 0  # ticks, trailing stops only (0: active at once)
    extreme: float = 0.0  # trailing: best price seen since activation (0: not active)
    algo_status: str = "NEW"
    update_time: int = 0
    trigger_time: int = 0
    actual_order_id: int | None = None
    reject_reason: str = ""
    position_side: str = "BOTH"  # LONG | SHORT in hedge mode
    price_match: str = "NONE"  # STOP / TAKE_PROFIT: the child's price is matched at trigger

    @property
    def is_open(self) -> bool:
        return self.algo_status in ALGO_OPEN
