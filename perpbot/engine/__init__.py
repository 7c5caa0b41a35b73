"""The strategy engine: base class, context, runner (ticks, reconcile, stop)."""

from perpbot.engine.strategy import OrderRejected, Strategy, StrategyStopped

__all__ = ["OrderRejected", "Strategy", "StrategyStopped"]
