"""The request pipeline: layers sharing one small interface, composed like middleware.

A layer is any object with ``name`` and ``async def __call__(request, call_next)``. It may
refuse (raise), wait, change the request, retry ``call_next``, or observe the result. Layers
know nothing of each other; each is tested alone with a fake ``call_next``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from perpbot.client.request import Request
from perpbot.events import EventBus

CallNext = Callable[[Request], Awaitable[Any]]


class Layer(Protocol):
    name: str

    async def __call__(self, request: Request, call_next: CallNext) -> Any: ...


class Pipeline:
    """Layers in order, ending at a terminal handler (the transport)."""

    def __init__(self, layers: Sequence[Layer], terminal: CallNext, bus: EventBus) -> None:
        self.layers = list(layers)
        self.terminal = terminal
        self.bus = bus
        self._chain = self._build()

    def _build(self) -> CallNext:
        handler = self.terminal
        for layer in reversed(self.layers):
            handler = _bind(layer, handler)
        return handler

    def layer(self, name: str) -> Any:
        """The layer called ``name`` (None if absent)."""
        return next((layer for layer in self.layers if layer.name == name), None)

    async def call(self, request: Request) -> Any:
        if not request.id:
            request.id = self.bus.next_request_id()
        return await self._chain(request)


def _bind(layer: Layer, call_next: CallNext) -> CallNext:
    async def handler(request: Request) -> Any:
        return await layer(request, call_next)

    return handler
