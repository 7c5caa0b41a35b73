"""The keeper: every position of the run carries an exchange-side stop, kept current.

Every ``check_interval_s`` (after the engine's reconcile has read the positions) the keeper
looks at each symbol of the strategy:

- a position with no standing protection of this run gets a ``closePosition`` STOP_MARKET
  (and, with ``take_profit_pct``, a ``closePosition`` TAKE_PROFIT_MARKET) at the planned
  price (perpbot.protect.plan). ``closePosition`` orders can only close: they never open or
  grow exposure, whatever happens to the position before they fire;
- a position whose size or side changed since it was protected gets new orders (planned
  from its new entry price) placed first, then the old ones cancelled, so it is never
  unprotected in between;
- a stop that is gone (fired, expired, cancelled by hand) while the position stands is
  replaced; a flat symbol's leftover orders are cancelled.

A position that cannot be protected (no entry price yet, the stop would fire at once, the
key lacks scope ``stop``, the exchange refuses) is tried again every ``RETRY_AFTER_S`` and
explained once per position state:
``Decision(layer="protect", action="unprotected", code=PROTECT_...)``, and with
``on_failure = "kill"`` the run's kill switch trips (perpbot.kill.trips: KILL_UNPROTECTED).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from perpbot.engine.conditional import ConditionalOrders, ConditionalSpec
from perpbot.engine.strategy import OrderRejected
from perpbot.events import Decision, EventBus
from perpbot.protect.plan import Protection, plan

if TYPE_CHECKING:
    from perpbot.config import ProtectSection
    from perpbot.engine.state import PositionSnapshot

INTENT = "protect"
RETRY_AFTER_S = 5.0


@dataclass(slots=True)
class Guard:
    amount: float
    stop_id: str
    take_profit_id: str | None


@dataclass(kw_only=True)
class Keeper:
    cfg: ProtectSection
    stops: ConditionalOrders
    bus: EventBus
    symbols: list[str]
    guards: dict[str, Guard] = field(default_factory=dict)
    explained: dict[str, float] = field(default_factory=dict)  # symbol -> amount explained
    failed_at: dict[str, float] = field(default_factory=dict)  # symbol -> monotonic time

    async def sync(self, positions: dict[str, PositionSnapshot]) -> None:
        for symbol in self.symbols:
            position = positions.get(symbol)
            await self._one(symbol, position)

    async def _one(self, symbol: str, position: PositionSnapshot | None) -> None:
        amount = position.amount if position is not None else 0.0
        guard = self.guards.get(symbol)
        if not amount:
            self.explained.pop(symbol, None)
            self.failed_at.pop(symbol, None)
            if guard is not None:
                await self._cancel(symbol, guard)
                del self.guards[symbol]
            return
        assert position is not None
        if guard is not None and guard.amount == amount:
            standing = {o.get("clientOrderId") for o in await self.stops.forget_gone(symbol)}
            if guard.stop_id in standing and guard.take_profit_id in (None, *standing):
                return
        failed = self.failed_at.get(symbol)
        if failed is not None and time.monotonic() - failed < RETRY_AFTER_S:
            return  # it failed a moment ago: try again in a while, not every round
        want = plan(position, self.cfg)
        if want is None:
            self._unprotected(
                symbol, amount, "PROTECT_NO_PRICE",
                "the exchange reported neither an entry nor a liquidation price to place "
                "the stop from",
            )  # fmt: skip
            return
        try:
            new = await self._place(want, position)
        except OrderRejected as exc:
            self._unprotected(symbol, amount, f"PROTECT_{exc.code}", exc.sentence)
            return
        if guard is not None:
            await self._cancel(symbol, guard)
        self.guards[symbol] = new
        self.explained.pop(symbol, None)
        self.failed_at.pop(symbol, None)

    async def _place(self, want: Protection, position: PositionSnapshot) -> Guard:
        mark = position.mark_price
        stop = await self.stops.place(
            ConditionalSpec(
                symbol=want.symbol, side=want.side, kind="stop_market",
                trigger_price=want.stop, close_position=True,
                working_type=self.cfg.working_type, intent=INTENT,
            ),
            position=position, mark=mark,
        )  # fmt: skip
        tp_id = None
        if want.take_profit is not None:
            try:
                tp = await self.stops.place(
                    ConditionalSpec(
                        symbol=want.symbol, side=want.side, kind="take_profit_market",
                        trigger_price=want.take_profit, close_position=True,
                        working_type=self.cfg.working_type, intent=INTENT,
                    ),
                    position=position, mark=mark,
                )  # fmt: skip
                tp_id = str(tp["clientOrderId"])
            except OrderRejected as exc:  # the stop stands: a missing take-profit is a warning
                self.bus.publish(
                    Decision(
                        "protect",
                        "warn",
                        f"PROTECT_TP_{exc.code}",
                        f"{want.symbol}: the stop stands but the take-profit was not "
                        f"placed: {exc.sentence}",
                        {"symbol": want.symbol},
                    )
                )
        return Guard(amount=want.amount, stop_id=str(stop["clientOrderId"]), take_profit_id=tp_id)

    async def _cancel(self, symbol: str, guard: Guard) -> None:
        for cid in (guard.stop_id, guard.take_profit_id):
            if cid is None:
                continue
            try:
                await self.stops.cancel(cid, symbol)
            except Exception as exc:  # a leftover closePosition order can only close
                self.bus.publish(
                    Decision(
                        "protect",
                        "warn",
                        "PROTECT_CANCEL_FAILED",
                        f"could not cancel the old protective order {cid} on {symbol} "
                        f"({type(exc).__name__}); it can only close the position",
                        {"symbol": symbol, "client_order_id": cid},
                    )
                )

    def _unprotected(self, symbol: str, amount: float, code: str, why: str) -> None:
        self.failed_at[symbol] = time.monotonic()
        if self.explained.get(symbol) == amount:
            return  # explained once per position state; retried every RETRY_AFTER_S
        self.explained[symbol] = amount
        kill = self.cfg.on_failure == "kill"
        side = "long" if amount > 0 else "short"
        sentence = f"the {side} {abs(amount):g} {symbol} has no exchange-side stop: {why}" + (
            "; [protect] on_failure = kill" if kill else ""
        )
        data = {"symbol": symbol, "amount": amount, "trip": kill}
        self.bus.publish(Decision("protect", "unprotected", code, sentence, data))
