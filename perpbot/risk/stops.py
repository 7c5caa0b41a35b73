"""Risk judgement of conditional orders: once when placed, again while they stand.

An exchange-side stop fires without asking the bot, so it is judged twice:

- **when placed** (``judge_placement``): its trigger must lie on the side it waits for (a
  sell stop below the mark, a sell take-profit above it: otherwise it fires at once), a
  reduce-only stop must sit against the position it protects, and a stop that may open
  exposure (neither reduce-only nor ``closePosition``) must keep the order and position
  notional limits of ``[risk]`` at its trigger price;
- **at trigger** (``judge_at_trigger``): the engine re-judges every standing stop of the run
  against the position as it is now, at every reconcile; an opening stop that would breach
  the limits if it fired now is cancelled before it can (``STOP_REFUSED_AT_TRIGGER``).
  Reduce-only and ``closePosition`` stops are never cancelled by this: they can only shrink
  a position.

Plain functions over plain data: the caller (perpbot.engine.conditional) publishes the
Decision and refuses or cancels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perpbot.config import RiskSection
    from perpbot.engine.state import PositionSnapshot

Refusal = tuple[str, str]  # (reason code, sentence)


@dataclass(frozen=True, kw_only=True)
class StopView:
    symbol: str
    side: str  # buy / sell
    kind: str  # stop_market, take_profit_market, stop, take_profit, trailing_stop
    amount: float | None
    trigger_price: float | None
    reduces_only: bool


def _limit(risk: RiskSection | None, symbol: str, name: str) -> float | None:
    if risk is None or not risk.enabled:
        return None
    own = risk.symbols.get(symbol)
    value = getattr(own, name, None) if own is not None else None
    return value if value is not None else getattr(risk, name)


def fires_on_rise(side: str, kind: str) -> bool:
    """Whether the order triggers when the price rises to its trigger (Binance's rule)."""
    stop_like = kind in ("stop_market", "stop", "trailing_stop")
    return (side == "buy") == stop_like


def _notional_refusal(
    view: StopView, position: float, price: float, risk: RiskSection | None, when: str
) -> Refusal | None:
    amount = view.amount or 0.0
    order_cap = _limit(risk, view.symbol, "max_order_notional")
    if order_cap is not None and amount * price > order_cap:
        return (
            "STOP_RISK_ORDER_NOTIONAL",
            f"{when}, this {view.side} {view.kind} of {amount:g} {view.symbol} would trade "
            f"{amount * price:,.2f} USDT at {price:g}, above [risk] max_order_notional "
            f"{order_cap:,.2f}",
        )
    signed = amount if view.side == "buy" else -amount
    after = abs(position + signed) * price
    pos_cap = _limit(risk, view.symbol, "max_position_notional")
    if pos_cap is not None and after > pos_cap and abs(position + signed) > abs(position):
        return (
            "STOP_RISK_POSITION_NOTIONAL",
            f"{when}, this {view.side} {view.kind} of {amount:g} {view.symbol} would take the "
            f"position from {position:g} to {position + signed:g} ({after:,.2f} USDT at "
            f"{price:g}), above [risk] max_position_notional {pos_cap:,.2f}",
        )
    return None


def judge_placement(
    view: StopView,
    position: PositionSnapshot | None,
    mark: float | None,
    risk: RiskSection | None,
) -> Refusal | None:
    """A refusal (code, sentence) for a conditional order about to be placed, or None."""
    held = position.amount if position is not None else 0.0
    trigger = view.trigger_price
    if mark and trigger and view.kind != "trailing_stop":
        rise = fires_on_rise(view.side, view.kind)
        if (rise and trigger <= mark) or (not rise and trigger >= mark):
            where = "above" if rise else "below"
            return (
                "STOP_WOULD_TRIGGER_NOW",
                f"a {view.side} {view.kind} on {view.symbol} fires when the price reaches "
                f"{trigger:g} from {where}, and the mark is already {mark:g}: it would fire "
                "at once; place it on the other side of the mark",
            )
    if view.reduces_only:
        against = (held > 0 and view.side == "sell") or (held < 0 and view.side == "buy")
        if held and not against:
            return (
                "STOP_WRONG_SIDE",
                f"a reduce-only {view.side} {view.kind} cannot protect the "
                f"{'long' if held > 0 else 'short'} {abs(held):g} {view.symbol}: it must "
                f"{'sell' if held > 0 else 'buy'}",
            )
        return None
    price = trigger or mark
    if price:
        return _notional_refusal(view, held, price, risk, "when it triggers")
    return None


def judge_at_trigger(
    view: StopView, position: PositionSnapshot | None, mark: float | None, risk: RiskSection | None
) -> Refusal | None:
    """Would this standing stop be refused if it fired now? (reduce-only ones never are)"""
    if view.reduces_only:
        return None
    price = view.trigger_price or mark
    if not price:
        return None
    held = position.amount if position is not None else 0.0
    found = _notional_refusal(view, held, price, risk, "if it fired now")
    if found is None:
        return None
    return "STOP_REFUSED_AT_TRIGGER", f"{found[1]} ({found[0]}); cancelled before it can fire"
