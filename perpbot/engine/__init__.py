"""The strategy engine: base class, the strategy's ``Context``, runner (ticks, reconcile, stop)."""

from perpbot.engine.api import StrategyContext as Context
from perpbot.engine.results import (
    Book,
    Fill,
    KillChange,
    Order,
    OrderUpdate,
    PositionChange,
    Ticker,
)
from perpbot.engine.strategy import OrderRejected, Strategy, StrategyStopped

__all__ = [
    "Book",
    "Context",
    "Fill",
    "KillChange",
    "Order",
    "OrderRejected",
    "OrderUpdate",
    "PositionChange",
    "Strategy",
    "StrategyStopped",
    "Ticker",
]
