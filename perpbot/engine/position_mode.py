"""The account's position mode at start: one-way, or hedge mode (Binance dualSidePosition).

A run reads it once, before anything is armed, into the shared ``AccountView.hedged``: the
order boundary (perpbot.client.validate) then judges every order's ``positionSide`` by it.
Hedge mode is supported for plain limit and market orders, the scope and risk gates, the
engine's positions (``RunState.legs``, ``ctx.position(symbol, position_side=...)``, REST
or streams), the kill switch's flatten, ``ctx.exit(position_side=...)``, conditional orders
(``position_side=``), ``[protect]`` (a stop per side) and ``[strategy] share_symbols``
(each side's own position from the run's own fills). What is not is
refused here, in one line, before anything is armed (docs/hedge-mode.md says why for each).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpbot.errors import PerpbotError

if TYPE_CHECKING:
    from perpbot.client.account import AccountView
    from perpbot.client.guarded import GuardedClient
    from perpbot.config import StrategyFile


def unsupported(config: StrategyFile) -> list[str]:
    """The parts of ``config`` a hedge-mode run does not support (empty: none)."""
    found = []
    if config.risk.liquidation_band_pct is not None:
        found.append("[risk] liquidation_band_pct")
    return found


async def read_position_mode(
    client: GuardedClient, account: AccountView, config: StrategyFile
) -> None:
    """Set ``account.hedged`` from the exchange; PerpbotError (exit 1) when the account is
    in hedge mode and ``config`` uses what hedge mode does not support."""
    if not client.exchange.has.get("fetchPositionMode"):
        account.hedged = False
        return
    mode = await client.fetch_position_mode(config.strategy.symbols[0])
    account.hedged = bool(mode.get("hedged"))
    missing = unsupported(config) if account.hedged else []
    if missing:
        raise PerpbotError(
            f"{config.exchange.id}: the account is in hedge mode (dualSidePosition), which "
            f"perpbot supports without {', '.join(missing)}: turn those off, or switch the "
            "account to one-way mode (no open orders or positions) and start again"
        )
