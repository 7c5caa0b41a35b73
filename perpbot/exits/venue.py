"""What an exit needs of the exchange: the guarded client, placing, cancelling, a position.

A run provides its own ``place``/``cancel`` (so its ledger sees the child orders), the kill
switch its ``ExchangeOps``; every call still passes the guarded client's pipeline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
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


def client_position(
    client: GuardedClient, position_side: str | None = None
) -> Callable[[str], Awaitable[float]]:
    """The signed position of a symbol as the exchange reports it now (hedge mode: of
    ``position_side``, LONG or SHORT)."""

    async def position(symbol: str) -> float:
        view = AccountView()
        view.set_positions(await client.fetch_positions([symbol]))
        return view.position(symbol, position_side)

    return position


def leg_venue(
    venue: ExitVenue, position_side: str, position: Callable[[str], Awaitable[float]]
) -> ExitVenue:
    """The venue an exit closes one side of a hedge-mode position through: ``position``
    reads that side's, and each reduce-only child goes out as that side's close (positionSide,
    no reduceOnly: Binance does not take it in hedge mode, and a SELL LONG / BUY SHORT
    cannot open anything)."""

    async def place(spec: OrderSpec) -> dict[str, Any]:
        if spec.reduce_only:
            spec = replace(spec, reduce_only=False, position_side=position_side)
        return await venue.place(spec)

    return ExitVenue(venue.client, place, venue.cancel, position)
