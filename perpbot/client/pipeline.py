"""The request pipeline: layers sharing one small interface, composed like middleware.

A layer is any object with ``name`` and ``__call__(request, call_next)`` returning an
awaitable: usually an ``async def``; a layer with nothing to do once the call returns may be
a plain ``def`` that checks and returns ``call_next(request)`` (one coroutine less on every
request). It may refuse (raise), wait, change the request, retry ``call_next``, or observe
the result. Layers know nothing of each other; each is tested alone with a fake
``call_next``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from perpbot.client.request import Request
from perpbot.events import EventBus

CallNext = Callable[[Request], Awaitable[Any]]


class Layer(Protocol):
    name: str

    def __call__(self, request: Request, call_next: CallNext) -> Awaitable[Any]: ...


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

    def call(self, request: Request) -> Awaitable[Any]:
        """Send ``request`` down the layers (await the result)."""
        if not request.id:
            request.id = self.bus.next_request_id()
        return self._chain(request)


def _bind(layer: Layer, call_next: CallNext) -> CallNext:
    """``layer`` with its ``call_next`` bound. The handler is a plain function that returns
    the layer's awaitable itself (no wrapper coroutine) and calls the bound method directly
    (no instance-call dispatch): it runs once per layer on every request."""
    call = layer.__call__

    def handler(request: Request) -> Awaitable[Any]:
        return call(request, call_next)

    return handler
