"""What a run knows of the account between two reconciles: positions, marks, equity.

One ``RunState`` per run, written by the reconciler and read by everyone else (the strategy's
context, the reporter, the kill switch's trips, the risk gate's marks). Plain data, no I/O.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from perpbot.client.position_side import leg_key


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A position as the last reconcile saw it (``ctx.position(symbol)``)."""

    symbol: str
    amount: float  # signed: > 0 long, < 0 short
    entry_price: float | None = None
    mark_price: float | None = None
    unrealized_pnl: float = 0.0
    liquidation_price: float | None = None
    leverage: float | None = None
    position_side: str | None = None  # LONG | SHORT: one side of a hedge-mode account
    # The exchange's time (epoch ms) of the change this snapshot shows: an ACCOUNT_UPDATE's
    # transaction time ``T``, positionRisk's ``updateTime``; None when the source says none
    updated_ms: int | None = None

    @property
    def side(self) -> str:
        return "long" if self.amount > 0 else "short" if self.amount < 0 else "flat"


@dataclass(slots=True)
class RunState:
    run_id: str
    strategy: str
    symbols: list[str]
    started: float = field(default_factory=time.time)
    # symbol -> position; on a hedge-mode account the net of its two sides (``legs``)
    positions: dict[str, PositionSnapshot] = field(default_factory=dict)
    # hedge mode: each side's position by ``leg_key`` ("SYMBOL|LONG", "SYMBOL|SHORT")
    legs: dict[str, PositionSnapshot] = field(default_factory=dict)
    marks: dict[str, float] = field(default_factory=dict)
    mark_times: dict[str, float] = field(default_factory=dict)  # epoch s (exchange time)
    # leg_key -> the exchange's time of the newest position change applied (it outlives a
    # hedge-mode side that went flat and left ``legs``): see ``admit``
    position_ms: dict[str, int] = field(default_factory=dict)
    equity: float | None = None
    start_equity: float | None = None
    peak_equity: float | None = None
    # The exchange's clock when the run started (its server time), set at connect. The
    # run's fills and funding are asked for from then: an exchange whose clock is not this
    # machine's (a simulator replaying history on the file's own dates, a skewed venue)
    # would otherwise answer "none since" for every one of them.
    exchange_start_ms: int | None = None
    clock_skew_ms: int = 0  # the exchange's clock less this machine's, read at connect

    @property
    def start_ms(self) -> int:
        """When the run started, on this machine's clock (epoch ms)."""
        return int(self.started * 1000)

    @property
    def since_ms(self) -> int:
        """When the run started on the exchange's clock (this machine's before connect)."""
        return self.exchange_start_ms if self.exchange_start_ms is not None else self.start_ms

    def admit(self, p: PositionSnapshot) -> bool:
        """Whether ``p`` may replace the snapshot of its position: not when it shows an
        older change than one already applied (an ACCOUNT_UPDATE delivered out of order, a
        REST answer read before a change the user stream delivered) and another amount.
        An older one with the same amount is admitted (it only brings REST's liquidation
        price, leverage and mark up to date), an undated one too (nothing to compare); a
        newer one's time becomes the newest applied."""
        if p.updated_ms is None:
            return True
        key = leg_key(p.symbol, p.position_side)
        newest = self.position_ms.get(key)
        if newest is None or p.updated_ms >= newest:
            self.position_ms[key] = p.updated_ms
            return True
        current = (self.legs if p.position_side else self.positions).get(key)
        return current is not None and current.amount == p.amount

    def unrealized_pnl(self) -> float:
        return sum(p.unrealized_pnl for p in self.positions.values())
