"""The engine's own event source: each new fill and each order change, once, as it is learnt.

Fills and order updates reach the engine from two places: the REST reconcile and, on an
exchange with streams, the user data stream (perpbot.streams). Both go through the
``Reconciler``'s ``record_trades``/``record_order``, which deduplicate fills by trade id (the
ledger) and publish here, so a consumer (the strategy runtime's ``on_fill`` and
``on_order_update``, a bench, a test) sees each fill exactly once whichever path won.

Consumers either register a callback (called on the engine's event loop, in order; keep it
short, a slow one delays the stream) or iterate asynchronously::

    async for event in runner.engine_events.iterate():
        ...
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from perpbot.engine.ledger import Fill

Source = Literal["stream", "rest"]


@dataclass(frozen=True, slots=True)
class FillEvent:
    """A fill of this run's order, new to the engine."""

    fill: Fill
    source: Source
    received: float = field(default_factory=time.monotonic)  # when the engine learnt it

    kind: str = "fill"


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """A change of one of this run's orders (status, cumulative filled)."""

    client_order_id: str
    symbol: str
    status: str
    filled: float
    order: dict[str, Any]
    source: Source
    received: float = field(default_factory=time.monotonic)

    kind: str = "order"


EngineEvent = FillEvent | OrderEvent
Listener = Callable[[EngineEvent], None]


class EngineEvents:
    """Synchronous fan-out to callbacks, plus bounded queues for async iterators."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []
        self._queues: list[asyncio.Queue[EngineEvent]] = []

    def subscribe(self, fn: Listener) -> None:
        self._listeners.append(fn)

    def unsubscribe(self, fn: Listener) -> None:
        self._listeners = [f for f in self._listeners if f != fn]

    def publish(self, event: EngineEvent) -> None:
        for fn in list(self._listeners):
            fn(event)
        for q in self._queues:
            q.put_nowait(event)

    async def iterate(self) -> AsyncIterator[EngineEvent]:
        """Every event published from now on (until the consumer stops iterating)."""
        q: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self._queues.append(q)
        try:
            while True:
                yield await q.get()
        finally:
            self._queues.remove(q)
