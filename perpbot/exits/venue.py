"""What an exit needs of the exchange: the guarded client, placing, cancelling, a position.

A run provides its own ``place``/``cancel`` (so its ledger sees the child orders), the kill
switch its ``ExchangeOps``; every call still passes the guarded client's pipeline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from perpbot.client.account import AccountView
from perpbot.client.request import OrderSpec

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient


@dataclass
class ExitVenue:
    client: GuardedClient
    place: Callable[[OrderSpec], Awaitable[dict[str, Any]]]
    cancel: Callable[[dict[str, Any], str], Awaitable[Any]]
    position: Callable[[str], Awaitable[float]]


def client_position(client: GuardedClient) -> Callable[[str], Awaitable[float]]:
    """The signed position of a symbol as the exchange reports it now."""

    async def position(symbol: str) -> float:
        view = AccountView()
        view.set_positions(await client.fetch_positions([symbol]))
        return view.position(symbol)

    return position
