"""What an exit needs of the exchange: the guarded client, placing, cancelling, a position.

A run provides its own ``place``/``cancel`` (so its ledger sees the child orders), the kill
switch its ``ExchangeOps``; every call still passes the guarded client's pipeline.

A position read answers all an exit needs of it (``HeldPosition``): the amount and how far
liquidation is, from one positions request. The exit's first read gives adaptive its
liquidation distance, and the read after each child (the amount left) gives the next
child's: no positions request of adaptive's own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from perpbot.client.account import AccountView
from perpbot.client.position_side import leg
from perpbot.client.request import OrderSpec
from perpbot.exits.blockers import FreeReduceOnly

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient


@dataclass(frozen=True)
class HeldPosition:
    """A position as one positions answer reports it."""

    amount: float  # signed (hedge mode: the side's; LONG > 0, SHORT < 0)
    liquidation_price: float | None = None  # None: none reported (fully collateralised)
    mark_price: float | None = None  # the mark the same answer carried

    @property
    def liq_distance_pct(self) -> float | None:
        """How far the liquidation price lies from the mark, in % of the mark."""
        liq, mark = self.liquidation_price, self.mark_price
        if not liq or not mark:
            return None
        return abs(mark - liq) / mark * 100

    @classmethod
    def from_rows(
        cls, rows: list[dict[str, Any]], symbol: str, position_side: str | None = None
    ) -> HeldPosition:
        """``symbol``'s position in a ccxt positions answer (hedge mode, ``position_side``
        LONG or SHORT: that side's row, its own liquidation price)."""
        view = AccountView()
        view.set_positions(rows)
        side = leg(position_side)
        for row in rows:
            info = row.get("info") or {}
            if row.get("symbol") != symbol or (side and leg(info.get("positionSide")) != side):
                continue
            liq, mark = row.get("liquidationPrice"), row.get("markPrice")
            if liq and mark:
                return cls(view.position(symbol, position_side), float(liq), float(mark))
        return cls(view.position(symbol, position_side))


PositionRead = Callable[[str], Awaitable[HeldPosition]]


@dataclass
class ExitVenue:
    client: GuardedClient
    place: Callable[[OrderSpec], Awaitable[dict[str, Any]]]
    cancel: Callable[[dict[str, Any], str], Awaitable[Any]]
    position: PositionRead
    # cancels the resting reduce-only orders that hold the position (exits/blockers.py);
    # None: this venue cancels none of them
    free: FreeReduceOnly | None = None
    free_who: str = "this exit may not cancel"  # what the refusal's sentence calls the rest


def client_position(client: GuardedClient, position_side: str | None = None) -> PositionRead:
    """The position of a symbol as the exchange reports it now (hedge mode: of
    ``position_side``, LONG or SHORT)."""

    async def position(symbol: str) -> HeldPosition:
        return HeldPosition.from_rows(await client.fetch_positions([symbol]), symbol, position_side)

    return position


def leg_venue(venue: ExitVenue, position_side: str, position: PositionRead) -> ExitVenue:
    """The venue an exit closes one side of a hedge-mode position through: ``position``
    reads that side's, and each reduce-only child goes out as that side's close (positionSide,
    no reduceOnly: Binance does not take it in hedge mode, and a SELL LONG / BUY SHORT
    cannot open anything)."""

    async def place(spec: OrderSpec) -> dict[str, Any]:
        if spec.reduce_only:
            spec = replace(spec, reduce_only=False, position_side=position_side)
        return await venue.place(spec)

    return ExitVenue(venue.client, place, venue.cancel, position, None, venue.free_who)
