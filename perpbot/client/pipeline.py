"""The request pipeline: layers sharing one small interface, composed like middleware.

A layer is any object with ``name`` and ``__call__(request, call_next)`` returning an
awaitable: usually an ``async def``; a layer with nothing to do once the call returns may be
a plain ``def`` that checks and returns ``call_next(request)`` (one coroutine less on every
request). It may refuse (raise), wait, change the request, retry ``call_next``, or observe
the result. Layers know nothing of each other; each is tested alone with a fake
``call_next``.

Routes: a layer may also have ``passes(request) -> bool``, True when it would do nothing
but ``call_next(request)`` for every request of that method and command, now and for the
rest of its life (the kill switch's door for reads, the scope gate for a method the grant
covers, the risk gate for reads). The pipeline builds, once per (method, command), the
chain of the layers that act on it, so a read skips the guards that only let it through.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from perpbot.client.request import Request
from perpbot.events import EventBus

CallNext = Callable[[Request], Awaitable[Any]]
ROUTES_MAX = 4096  # (method, command) pairs: a handful in practice


class Layer(Protocol):
    name: str

    def __call__(self, request: Request, call_next: CallNext) -> Awaitable[Any]: ...


class Pipeline:
    """Layers in order, ending at a terminal handler (the transport)."""

    def __init__(self, layers: Sequence[Layer], terminal: CallNext, bus: EventBus) -> None:
        self.layers = list(layers)
        self.terminal = terminal
        self.bus = bus
        self._routes: dict[tuple[str, str], CallNext] = {}

    def layer(self, name: str) -> Any:
        """The layer called ``name`` (None if absent)."""
        return next((layer for layer in self.layers if layer.name == name), None)

    def route(self, request: Request) -> list[Layer]:
        """The layers ``request`` goes through (those that do not just let it pass)."""
        return [
            layer
            for layer in self.layers
            if not (hasattr(layer, "passes") and layer.passes(request))  # type: ignore[attr-defined]
        ]

    def call(self, request: Request) -> Awaitable[Any]:
        """Send ``request`` down the layers (await the result)."""
        if not request.id:
            request.id = self.bus.next_request_id()
        chain = self._routes.get((request.method, request.command))
        if chain is None:
            chain = self._chain_for(request)
        return chain(request)

    def _chain_for(self, request: Request) -> CallNext:
        handler = self.terminal
        for layer in reversed(self.route(request)):
            handler = _bind(layer, handler)
        if len(self._routes) >= ROUTES_MAX:
            self._routes.clear()
        self._routes[(request.method, request.command)] = handler
        return handler


def _bind(layer: Layer, call_next: CallNext) -> CallNext:
    """``layer`` with its ``call_next`` bound. The handler is a plain function that returns
    the layer's awaitable itself (no wrapper coroutine) and calls the bound method directly
    (no instance-call dispatch): it runs once per layer on every request."""
    call = layer.__call__

    def handler(request: Request) -> Awaitable[Any]:
        return call(request, call_next)

    return handler
