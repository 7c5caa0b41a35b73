"""The keeper: every position of the run carries an exchange-side stop, kept current.

Every ``check_interval_s`` (after the engine's reconcile has read the positions) the keeper
looks at each symbol of the strategy:

- a position with no standing protection of this run gets a ``closePosition`` STOP_MARKET
  (and, with ``take_profit_pct``, a ``closePosition`` TAKE_PROFIT_MARKET) at the planned
  price (perpbot.protect.plan). ``closePosition`` orders can only close: they never open or
  grow exposure, whatever happens to the position before they fire;
- a position whose size or side changed since it was protected gets new orders (planned
  from its new entry price). Binance takes one ``closePosition`` order per type and direction
  (a second is refused, -4130), so the stop is replaced through a temporary reduce-only
  STOP_MARKET (a "bridge": the position's amount at the new trigger, not ``closePosition``):
  the bridge placed, the old stop cancelled, the new stop placed, the bridge cancelled; a stop
  stands at every moment, and a step that fails leaves the position covered by whichever
  stands, said (``PROTECT_KEPT_...``, ``PROTECT_BRIDGE_...``) and retried. The take-profit is
  cancelled, then placed anew (it is no protection: a moment without one is no risk);
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
    # a temporary reduce-only stop of a replacement not finished yet, and the position
    # amount it was placed for; it is the stop itself when bridge_id == stop_id
    bridge_id: str | None = None
    bridge_for: float = 0.0


@dataclass(kw_only=True)
class Keeper:
    cfg: ProtectSection
    stops: ConditionalOrders
    bus: EventBus
    symbols: list[str]
    guards: dict[str, Guard] = field(default_factory=dict)  # by leg_key
    explained: dict[str, float] = field(default_factory=dict)  # leg_key -> amount explained
    failed_at: dict[str, float] = field(default_factory=dict)  # leg_key -> monotonic time
    # protective orders whose cancel failed, (symbol, client id): they can only close, but
    # one left standing would close a later position at a stale price, or refuse its stop
    # (-4130); cancelled again every RETRY_AFTER_S (strays_at: the last try, monotonic)
    strays: set[tuple[str, str]] = field(default_factory=set)
    strays_at: float = 0.0

    async def sync(
        self, positions: dict[str, PositionSnapshot], legs: dict[str, PositionSnapshot]
    ) -> None:
        """Protect each symbol's position (one-way) or each of its sides (hedge mode:
        ``legs`` by leg_key)."""
        await self._cancel_strays()
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
        if guard is not None and guard.amount == amount and guard.bridge_id is None:
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
        if guard is not None:
            await self._replace(key, want, position, side, guard)
            return
        try:
            stop_id = await self._place_stop(want, position, side)
        except OrderRejected as exc:
            self._unprotected(key, amount, f"PROTECT_{exc.code}", exc.sentence)
            return
        tp_id = await self._place_take_profit(want, position, side)
        self._protected(key, Guard(amount=amount, stop_id=stop_id, take_profit_id=tp_id))

    async def _replace(
        self, key: str, want: Protection, position: PositionSnapshot, side: str | None, guard: Guard
    ) -> None:
        """Replace ``guard``'s stop without a moment uncovered and without a second
        ``closePosition`` stop beside the first (-4130): the bridge (a reduce-only STOP_MARKET
        for the position's amount at the new trigger), the old stop cancelled, the new
        ``closePosition`` stop, the bridge cancelled; then the take-profit."""
        symbol, amount = want.symbol, position.amount
        if guard.bridge_id is not None and guard.bridge_for == amount:
            bridge_id = guard.bridge_id  # an earlier try's bridge, for this very amount
        else:
            try:
                bridge_id = await self._place_stop(want, position, side, amount=abs(amount))
            except OrderRejected as exc:
                self._covered(key, amount, f"PROTECT_KEPT_{exc.code}",
                              f"it keeps its stop {guard.stop_id} (planned for "
                              f"{guard.amount:g}): the temporary stop at {want.stop:g} was "
                              f"refused: {exc.sentence}")  # fmt: skip
                return
            if guard.bridge_id is not None:  # an earlier try's, for another amount
                await self._cancel_one(symbol, guard.bridge_id)
        if guard.stop_id == guard.bridge_id:  # no closePosition stop should stand: cancel
            await self._cancel_stray_stops(symbol, want.side, side)  # any left (-4130)
        elif not await self._cancel_one(symbol, guard.stop_id):
            self.guards[key] = Guard(amount=guard.amount, stop_id=guard.stop_id,
                                     take_profit_id=guard.take_profit_id, bridge_id=bridge_id,
                                     bridge_for=amount)  # fmt: skip
            self._covered(key, amount, "PROTECT_KEPT_CANCEL_FAILED",
                          f"its old stop {guard.stop_id} (closePosition, planned for "
                          f"{guard.amount:g}) could not be cancelled, and a second "
                          "closePosition stop beside it would be refused (-4130): the "
                          f"temporary reduce-only stop {bridge_id} for {abs(amount):g} at "
                          f"{want.stop:g} stands beside it")  # fmt: skip
            return
        try:
            stop_id = await self._place_stop(want, position, side)
        except OrderRejected as exc:
            self.guards[key] = Guard(amount=amount, stop_id=bridge_id,
                                     take_profit_id=guard.take_profit_id, bridge_id=bridge_id,
                                     bridge_for=amount)  # fmt: skip
            self._covered(key, amount, f"PROTECT_BRIDGE_{exc.code}",
                          f"it is covered by the temporary reduce-only stop {bridge_id} for "
                          f"{abs(amount):g} at {want.stop:g}: the closePosition stop was "
                          f"refused: {exc.sentence}")  # fmt: skip
            return
        await self._cancel_one(symbol, bridge_id)  # one left standing can only close
        if guard.take_profit_id is not None:  # cancelled first: -4130 again otherwise
            await self._cancel_one(symbol, guard.take_profit_id)
        tp_id = await self._place_take_profit(want, position, side)
        self._protected(key, Guard(amount=amount, stop_id=stop_id, take_profit_id=tp_id))

    async def _cancel_stray_stops(self, symbol: str, closing: str, side: str | None) -> None:
        """While the bridge covers the position: cancel any ``closePosition`` stop of the run
        still standing in this direction (an old one whose cancel was answered "unknown
        order"), which would refuse the new one (-4130)."""
        for o in await self.stops.open(symbol):
            if (
                o.get("closePosition")
                and o.get("type") == "stop_market"
                and o.get("side") == closing
                and leg(o.get("positionSide")) == side
            ):
                await self._cancel_one(symbol, str(o.get("clientOrderId")))

    def _protected(self, key: str, guard: Guard) -> None:
        self.guards[key] = guard
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

    async def _place_stop(
        self, want: Protection, position: PositionSnapshot, side: str | None,
        amount: float | None = None,
    ) -> str:  # fmt: skip
        """The ``closePosition`` STOP_MARKET at ``want.stop`` (with ``amount``: the
        reduce-only bridge for that amount); its client id."""
        stop = await self.stops.place(
            ConditionalSpec(
                symbol=want.symbol, side=want.side, kind="stop_market",
                trigger_price=want.stop, amount=amount, close_position=amount is None,
                reduce_only=amount is not None, working_type=self.cfg.working_type,
                intent=INTENT, position_side=side,
            ),
            position=position, mark=position.mark_price,
        )  # fmt: skip
        return str(stop["clientOrderId"])

    async def _place_take_profit(
        self, want: Protection, position: PositionSnapshot, side: str | None
    ) -> str | None:
        """The ``closePosition`` TAKE_PROFIT_MARKET, if planned; a refusal is a warning (the
        stop stands)."""
        if want.take_profit is None:
            return None
        try:
            tp = await self.stops.place(
                ConditionalSpec(
                    symbol=want.symbol, side=want.side, kind="take_profit_market",
                    trigger_price=want.take_profit, close_position=True,
                    working_type=self.cfg.working_type, intent=INTENT, position_side=side,
                ),
                position=position, mark=position.mark_price,
            )  # fmt: skip
        except OrderRejected as exc:
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
            return None
        return str(tp["clientOrderId"])

    async def _cancel(self, symbol: str, guard: Guard) -> None:
        for cid in dict.fromkeys((guard.stop_id, guard.take_profit_id, guard.bridge_id)):
            if cid is not None:
                await self._cancel_one(symbol, cid)

    async def _cancel_strays(self) -> None:
        """Cancel again the protective orders whose cancel failed (every RETRY_AFTER_S)."""
        if not self.strays or time.monotonic() - self.strays_at < RETRY_AFTER_S:
            return
        self.strays_at = time.monotonic()
        for symbol, cid in sorted(self.strays):
            await self._cancel_one(symbol, cid)

    async def _cancel_one(self, symbol: str, cid: str) -> bool:
        """Cancel one protective order; False when it may still stand (said once, and
        cancelled again later: ``strays``)."""
        try:
            await self.stops.cancel(cid, symbol)  # one already gone counts as cancelled
        except Exception as exc:  # a leftover protective order can only close
            if (symbol, cid) not in self.strays:
                self.strays.add((symbol, cid))
                self.strays_at = time.monotonic()
                self.bus.publish(
                    Decision(
                        "protect",
                        "warn",
                        "PROTECT_CANCEL_FAILED",
                        f"could not cancel the old protective order {cid} on {symbol} "
                        f"({type(exc).__name__}); it can only close the position, and is "
                        f"cancelled again every {RETRY_AFTER_S:g} s until it is gone",
                        {"symbol": symbol, "client_order_id": cid},
                    )
                )
            return False
        self.strays.discard((symbol, cid))
        return True

    def _covered(self, key: str, amount: float, code: str, why: str) -> None:
        """A replacement step failed: the position stands covered by the stop named in
        ``why`` (a warning, no trip); said once per position state, retried."""
        self._failed(key, amount, "warn", code, f"was not given its new stop: {why}")

    def _unprotected(self, key: str, amount: float, code: str, why: str) -> None:
        kill = self.cfg.on_failure == "kill"
        what = f"has no exchange-side stop: {why}" + (
            "; [protect] on_failure = kill" if kill else ""
        )
        self._failed(key, amount, "unprotected", code, what, trip=kill)

    def _failed(
        self, key: str, amount: float, action: str, code: str, what: str, trip: bool | None = None
    ) -> None:
        """Note a failure (tried again after RETRY_AFTER_S) and say it once per position
        state."""
        self.failed_at[key] = time.monotonic()
        if self.explained.get(key) == amount:
            return
        self.explained[key] = amount
        symbol, _, ps = key.partition("|")
        which = f" ({ps} side)" if leg(ps) else ""
        held = "long" if amount > 0 else "short"
        sentence = f"the {held} {abs(amount):g} {symbol}{which} {what}"
        data: dict[str, object] = {"symbol": symbol, "amount": amount}
        if trip is not None:
            data["trip"] = trip
        if leg(ps):
            data["position_side"] = ps
        self.bus.publish(Decision("protect", action, code, sentence, data))
