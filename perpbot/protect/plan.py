"""Where a position's protective stop and take-profit go (pure arithmetic)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from perpbot.config import ProtectSection
    from perpbot.engine.state import PositionSnapshot


@dataclass(frozen=True, kw_only=True)
class Protection:
    symbol: str
    side: Literal["buy", "sell"]  # the closing side
    amount: float  # the signed position it protects
    stop: float
    take_profit: float | None


def plan(position: PositionSnapshot, cfg: ProtectSection) -> Protection | None:
    """The stop (the tighter of the entry distance and the liquidation margin) and the
    optional take-profit for ``position``; None when no price to measure from is known."""
    amount = position.amount
    if not amount:
        return None
    long = amount > 0
    sign = 1.0 if long else -1.0
    entry, liq = position.entry_price, position.liquidation_price
    stops: list[float] = []
    if cfg.stop_pct is not None and entry:
        stops.append(entry * (1.0 - sign * cfg.stop_pct / 100.0))
    if cfg.liquidation_margin_pct is not None and liq and liq > 0:
        stops.append(liq * (1.0 + sign * cfg.liquidation_margin_pct / 100.0))
    if not stops:
        return None
    stop = max(stops) if long else min(stops)
    take = None
    if cfg.take_profit_pct is not None and entry:
        take = entry * (1.0 + sign * cfg.take_profit_pct / 100.0)
    return Protection(
        symbol=position.symbol,
        side="sell" if long else "buy",
        amount=amount,
        stop=stop,
        take_profit=take,
    )
