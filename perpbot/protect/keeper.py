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
  replaced; a flat symbol's leftover orders are cancelled;
- at a restart, a position still carrying the ``closePosition`` stop an earlier run of this
  strategy left (taken over by the start-up sweep, perpbot.kill.leftover_stops) keeps it as
  its stop (``PROTECT_ADOPTED``) instead of getting a second beside it.

A position that cannot be protected (no entry price yet, the stop would fire at once, the
key lacks scope ``stop``, the exchange refuses) is tried again every ``RETRY_AFTER_S`` and
explained once per position state (on a hedge-mode account the LONG and the SHORT side of a
symbol are each a position here: each gets its own ``closePosition`` orders with its
``positionSide``, kept by ``leg_key``, "SYMBOL|LONG"):
``Decision(layer="protect", action="unprotected", code=PROTECT_...)``, and with
``on_failure = "kill"`` the run's kill switch trips (perpbot.kill.trips: KILL_UNPROTECTED).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from perpbot.client.position_side import HEDGE_SIDES, leg, leg_key
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
    guards: dict[str, Guard] = field(default_factory=dict)  # by leg_key
    explained: dict[str, float] = field(default_factory=dict)  # leg_key -> amount explained
    failed_at: dict[str, float] = field(default_factory=dict)  # leg_key -> monotonic time

    async def sync(
        self, positions: dict[str, PositionSnapshot], legs: dict[str, PositionSnapshot]
    ) -> None:
        """Protect each symbol's position (one-way) or each of its sides (hedge mode:
        ``legs`` by leg_key)."""
        hedged = self.stops.orders.account.hedged
        for symbol in self.symbols:
            if not hedged:
                await self._one(symbol, None, positions.get(symbol))
                continue
            for side in HEDGE_SIDES:
                await self._one(symbol, side, legs.get(leg_key(symbol, side)))

    async def _one(self, symbol: str, side: str | None, position: PositionSnapshot | None) -> None:
        key = leg_key(symbol, side)
        amount = position.amount if position is not None else 0.0
        guard = self.guards.get(key)
        if not amount:
            self.explained.pop(key, None)
            self.failed_at.pop(key, None)
            if guard is not None:
                await self._cancel(symbol, guard)
                del self.guards[key]
            return
        assert position is not None
        if guard is None and self.stops.inherited:
            guard = await self._inherit(symbol, side, position)
        if guard is not None and guard.amount == amount:
            standing = {o.get("clientOrderId") for o in await self.stops.forget_gone(symbol)}
            if guard.stop_id in standing and guard.take_profit_id in (None, *standing):
                return
        failed = self.failed_at.get(key)
        if failed is not None and time.monotonic() - failed < RETRY_AFTER_S:
            return  # it failed a moment ago: try again in a while, not every round
        want = plan(position, self.cfg)
        if want is None:
            self._unprotected(
                key, amount, "PROTECT_NO_PRICE",
                "the exchange reported neither an entry nor a liquidation price to place "
                "the stop from",
            )  # fmt: skip
            return
        try:
            new = await self._place(want, position, side)
        except OrderRejected as exc:
            self._unprotected(key, amount, f"PROTECT_{exc.code}", exc.sentence)
            return
        if guard is not None:
            await self._cancel(symbol, guard)
        self.guards[key] = new
        self.explained.pop(key, None)
        self.failed_at.pop(key, None)

    async def _inherit(
        self, symbol: str, side: str | None, position: PositionSnapshot
    ) -> Guard | None:
        """A position this run has not protected yet, on which an earlier run of this
        strategy left a ``closePosition`` stop standing (adopted by the start-up sweep,
        perpbot.kill.leftover_stops): that stop becomes this position's guard, said once
        (``PROTECT_ADOPTED``), rather than a second one placed beside it (Binance takes one
        ``closePosition`` order per type and direction: -4130). Extra ones of the kind, and
        ones on the wrong side (the position reversed meanwhile), are cancelled."""
        closing = "sell" if position.amount > 0 else "buy"
        stop: dict[str, Any] | None = None
        take_profit: dict[str, Any] | None = None
        extra: list[dict[str, Any]] = []
        for o in await self.stops.open(symbol):
            cid = str(o.get("clientOrderId"))
            if not o.get("closePosition") or cid not in self.stops.inherited:
                continue
            if leg(o.get("positionSide")) != side:
                continue
            self.stops.inherited.discard(cid)  # looked at once: kept or cancelled here
            if o.get("side") != closing:
                extra.append(o)
            elif o.get("type") == "stop_market" and stop is None:
                stop = o
            elif o.get("type") == "take_profit_market" and take_profit is None:
                take_profit = o
            else:
                extra.append(o)
        for o in extra:
            await self._cancel_one(symbol, str(o.get("clientOrderId")))
        if stop is None:
            return None
        guard = Guard(
            amount=position.amount,
            stop_id=str(stop.get("clientOrderId")),
            take_profit_id=str(take_profit.get("clientOrderId")) if take_profit else None,
        )
        key = leg_key(symbol, side)
        self.guards[key] = guard
        held = "long" if position.amount > 0 else "short"
        tp = f" and its take-profit {guard.take_profit_id}" if take_profit else ""
        self.bus.publish(
            Decision(
                "protect",
                "adopt",
                "PROTECT_ADOPTED",
                f"the {held} {abs(position.amount):g} {symbol} keeps the closePosition "
                f"STOP_MARKET {guard.stop_id} at {stop.get('triggerPrice')}{tp} an earlier run "
                "of this strategy left: adopted as its stop, none placed beside it",
                {
                    "symbol": symbol,
                    "client_order_id": guard.stop_id,
                    "trigger_price": stop.get("triggerPrice"),
                    "position_side": side,
                },
            )
        )
        return guard

    async def _place(self, want: Protection, position: PositionSnapshot, side: str | None) -> Guard:
        mark = position.mark_price
        stop = await self.stops.place(
            ConditionalSpec(
                symbol=want.symbol, side=want.side, kind="stop_market",
                trigger_price=want.stop, close_position=True,
                working_type=self.cfg.working_type, intent=INTENT, position_side=side,
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
                        working_type=self.cfg.working_type, intent=INTENT, position_side=side,
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
            if cid is not None:
                await self._cancel_one(symbol, cid)

    async def _cancel_one(self, symbol: str, cid: str) -> None:
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

    def _unprotected(self, key: str, amount: float, code: str, why: str) -> None:
        self.failed_at[key] = time.monotonic()
        if self.explained.get(key) == amount:
            return  # explained once per position state; retried every RETRY_AFTER_S
        self.explained[key] = amount
        symbol, _, ps = key.partition("|")
        kill = self.cfg.on_failure == "kill"
        side = "long" if amount > 0 else "short"
        which = f" ({ps} side)" if leg(ps) else ""
        sentence = (
            f"the {side} {abs(amount):g} {symbol}{which} has no exchange-side stop: {why}"
            + ("; [protect] on_failure = kill" if kill else "")
        )
        data: dict[str, object] = {"symbol": symbol, "amount": amount, "trip": kill}
        if leg(ps):
            data["position_side"] = ps
        self.bus.publish(Decision("protect", "unprotected", code, sentence, data))
