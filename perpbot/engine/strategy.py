"""The strategy API: subclass ``Strategy`` and override the callbacks you need.

Strategy code is plain synchronous Python. It runs in its own process (``[strategy]
isolation = "process"``) or thread (``"thread"``), and every ``ctx`` helper blocks until the
guarded client answers. That keeps strategies simple and means a strategy that hangs or
loops cannot freeze the engine: the watchdog, the kill switch and the stop path run on the
engine's event loop regardless. docs/strategy.md describes every callback and the order in
which they are delivered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from perpbot.engine.api import StrategyContext as Context
    from perpbot.engine.results import Fill, KillChange, OrderUpdate, PositionChange


class OrderRejected(Exception):
    """An order was refused (by a risk check or by the exchange). Strategies may catch it."""

    def __init__(self, code: str, sentence: str) -> None:
        super().__init__(f"{code}: {sentence}")
        self.code = code
        self.sentence = sentence


class StrategyStopped(Exception):
    """The run is stopping: the context accepts no more calls."""


class Strategy:
    """Base class for strategies.

    Declare ``Params`` (a pydantic model) to have ``[strategy.params]`` validated with the
    same one-line errors as the rest of strategy.toml; ``self.params`` is then an instance.
    """

    Params: ClassVar[type[BaseModel] | None] = None

    def __init__(self, params: Any) -> None:
        self.params = params

    def on_start(self, ctx: Context) -> None:
        """Called once, after markets are loaded and before the first tick."""

    def on_tick(self, ctx: Context) -> None:
        """Called every ``tick_interval`` seconds after the engine has reconciled."""

    def on_stop(self, ctx: Context) -> None:
        """Called once when the run stops, before the engine cancels open orders."""

    # -- events (delivered before on_tick, in this order: kill, fills, orders, positions) --
    def on_kill(self, ctx: Context, change: KillChange) -> None:
        """The kill switch now stands for this run (``change.standing``) or was cleared."""

    def on_fill(self, ctx: Context, fill: Fill) -> None:
        """One new trade of this run's orders, as the ledger recorded it."""

    def on_order_update(self, ctx: Context, update: OrderUpdate) -> None:
        """An order of this run changed state (accepted, partially_filled, filled,
        cancelled, expired, rejected), with the reason code and sentence."""

    def on_position_change(self, ctx: Context, change: PositionChange) -> None:
        """A symbol's signed position amount changed."""

    # -- state across restarts ------------------------------------------------------------
    def on_save(self, ctx: Context) -> dict[str, Any] | None:
        """Return what to keep for the next run of this strategy (JSON data), or None.
        Called after ``on_stop`` and every ``[strategy] save_interval_s``."""
        return None

    def on_load(self, ctx: Context, saved: dict[str, Any]) -> None:
        """Called before ``on_start`` with what the last run's ``on_save`` returned."""
