"""A strategy the test drives: each tick it runs the calls the test queued, in order."""

from __future__ import annotations

import queue
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from perpbot.engine import Strategy
from perpbot.engine.context import Context
from perpbot.engine.results import OrderUpdate, PositionChange


class Remote(Strategy):
    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.inbox: queue.Queue[tuple[Callable[[Context], Any], Future[Any]]] = queue.Queue()
        self.position_changes: list[PositionChange] = []  # what on_position_change was told
        self.updates: list[OrderUpdate] = []  # what on_order_update was told

    def on_tick(self, ctx: Context) -> None:
        while True:
            try:
                fn, fut = self.inbox.get_nowait()
            except queue.Empty:
                return
            try:
                fut.set_result(fn(ctx))
            except BaseException as exc:  # handed to the test, which asserts on it
                fut.set_exception(exc)

    def on_position_change(self, ctx: Context, change: PositionChange) -> None:
        self.position_changes.append(change)

    def on_order_update(self, ctx: Context, update: OrderUpdate) -> None:
        self.updates.append(update)
