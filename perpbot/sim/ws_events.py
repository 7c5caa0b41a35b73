"""Engine events: what the matching engine announces as it changes, for the stream layer.

The engine calls ``Engine.emit`` synchronously at the moment of each change, so a
listener renders its payload from the same state the REST handlers read; REST and streams
therefore never disagree. Listeners must not mutate the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from perpbot.sim.models import Order, Trade


@dataclass(slots=True, frozen=True)
class OrderChanged:
    """An order's state changed: NEW, TRADE (with its fill), CANCELED, EXPIRED, AMENDMENT."""

    order: Order
    execution: str
    t: int
    trade: Trade | None = None


@dataclass(slots=True, frozen=True)
class AccountChanged:
    """Balances or positions changed (reason as Binance's ACCOUNT_UPDATE ``m``)."""

    account: str
    reason: str
    t: int
    symbols: tuple[str, ...] = ()


@dataclass(slots=True, frozen=True)
class LeverageChanged:
    account: str
    symbol: str
    leverage: int
    t: int


@dataclass(slots=True, frozen=True)
class MarketTrade:
    """A trade printed on the public tape (users' and the crowd's)."""

    symbol: str
    trade_id: int
    price: int  # ticks
    qty: int  # steps
    taker_buys: bool
    t: int


@dataclass(slots=True, frozen=True)
class Liquidated:
    """A forced close; ``record`` is the entry appended to ``Engine.liquidations``."""

    record: dict[str, object]


@dataclass(slots=True, frozen=True)
class DepthSnapshot:
    """A REST depth snapshot of ``symbol`` is about to be served (sync point for diffs)."""

    symbol: str


SimEvent = (
    OrderChanged | AccountChanged | LeverageChanged | MarketTrade | Liquidated | DepthSnapshot
)
Listener = Callable[[SimEvent], None]
