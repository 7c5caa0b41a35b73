"""The request pipeline: layers sharing one small interface, composed like middleware.

A layer is any object with ``name`` and ``async def __call__(request, call_next)``. It may
refuse (raise), wait, change
the request, retry ``call_next``, or observe the result. Layers know nothing of each other;
each is tested alone with a fake ``call_next``.

Routes: a layer may also have ``passes(request) -> bool``, True when it would do nothing
but ``call_next(request)`` for that request (the kill switch's door for reads and cancels,
the scope gate for a method the grant covers, the risk gate for reads). Such a layer is
left out of that request's chain. The chain is built per request: no cache.
"""

from __future__ import annotations

import functools
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

    def layer(self, name: str) -> Any:
        """The layer called ``name`` (None if absent)."""
        return next((layer for layer in self.layers if layer.name == name), None)

    def route(self, request: Request) -> list[Layer]:
        """The layers ``request`` goes through (those that do not just let it pass)."""
        route: list[Layer] = []
        for layer in self.layers:
            passes = getattr(layer, "passes", None)  # (one look-up, not hasattr and another)
            if passes is None or not passes(request):
                route.append(layer)
        return route

    def call(self, request: Request) -> Awaitable[Any]:
        """Send ``request`` down the layers of its route, then the terminal: the awaitable
        of its first layer (the pipeline adds no coroutine of its own to every request)."""
        if not request.id:
            request.id = self.bus.next_request_id()
        handler = self.terminal  # the route's first layer calling the next ... the terminal
        for layer in reversed(self.route(request)):
            handler = functools.partial(layer, call_next=handler)
        return handler(request)
