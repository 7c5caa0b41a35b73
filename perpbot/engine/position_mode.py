"""The account's position mode at start: one-way, or hedge mode (Binance dualSidePosition).

A run reads it once, before anything is armed, into the shared ``AccountView.hedged``: the
order boundary (perpbot.client.validate) then judges every order's ``positionSide`` by it.
Every part of a run works on a hedge-mode account (docs/hedge-mode.md): plain limit and
market orders, the scope and risk gates (``liquidation_band_pct`` with one liquidation
price per symbol's sides), the engine's positions (``RunState.legs``,
``ctx.position(symbol, position_side=...)``, REST or streams), the kill switch's flatten,
``ctx.exit(position_side=...)``, conditional orders (``position_side=``), ``[protect]`` (a
stop per side) and ``[strategy] share_symbols`` (each side's own position from the run's
own fills).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perpbot.client.account import AccountView
    from perpbot.client.guarded import GuardedClient
    from perpbot.config import StrategyFile


async def read_position_mode(
    client: GuardedClient, account: AccountView, config: StrategyFile
) -> None:
    """Set ``account.hedged`` from the exchange (False where it cannot be read)."""
    if not client.exchange.has.get("fetchPositionMode"):
        account.hedged = False
        return
    mode = await client.fetch_position_mode(config.strategy.symbols[0])
    account.hedged = bool(mode.get("hedged"))
