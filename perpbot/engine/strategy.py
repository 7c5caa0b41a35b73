"""The strategy API: subclass ``Strategy`` and override ``on_start`` / ``on_tick``.

Strategy code is plain synchronous Python. It runs in its own thread, and every ``ctx``
helper blocks until the guarded client answers. That keeps strategies simple and, more
importantly, means a strategy that hangs or loops cannot freeze the engine: the watchdog,
the kill switch and the stop path run on the engine's event loop regardless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from perpbot.engine.context import Context


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
