"""The conditional orders (stops, take-profits, trailing stops) an earlier run of this
strategy left standing, met by the start-up sweep (perpbot.kill.sweep).

They live in Binance's Algo Order API, apart from the open orders the sweep lists first, and
the dead-man countdown does not cancel them (docs/kill.md). What the restarted run does:

- a ``closePosition`` stop or take-profit (what ``[protect]`` places, or a strategy's
  ``close_position=True``) can only close the position it stands on, never open or grow
  one: it stays and becomes this run's (``adopt``), so the position the earlier run left is
  never naked at the restart; the ``[protect]`` keeper keeps it as that position's stop
  instead of placing a second one beside it (Binance takes one ``closePosition`` order per
  type and direction, -4130; perpbot.protect.keeper);
- any other one (a reduce-only stop for an amount, an opening stop, a trailing stop): with
  ``[strategy] leftover_orders = "cancel"`` (default) it is cancelled, like the plain
  orders (an opening stop fired by the exchange while no run judges it could open exposure
  the risk limits never saw); with ``"adopt"`` it becomes this run's.

Only orders carrying this strategy's tag are touched: another strategy's, a manual one's
stay as they are. A listing that fails is said (``START_STOPS_UNLISTED``) and the start
goes on: the countdown does not cover algo orders, so arming it changes nothing for them.
A cancel that fails refuses the start (exit 1), as for plain leftovers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perpbot.client.orders import perpbot_strategy_tag
from perpbot.errors import PerpbotError, describe_error

if TYPE_CHECKING:
    from collections.abc import Callable

    from perpbot.engine.conditional import ConditionalOrders


def _ids(found: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
    """The client ids of ``found``'s orders, per symbol (the sweep's record)."""
    return {s: [o.get("clientOrderId") for o in os_] for s, os_ in found.items()}


def _named(found: dict[str, list[dict[str, Any]]]) -> str:
    return "; ".join(
        f"{s}: " + ", ".join(f"{o.get('clientOrderId')} ({_what(o)})" for o in os_)
        for s, os_ in found.items()
    )


def _what(o: dict[str, Any]) -> str:
    kind = str(o.get("type") or "").upper()
    side = str(o.get("side") or "").upper()
    size = "closePosition" if o.get("closePosition") else f"{o.get('amount') or 0:g}"
    at = o.get("triggerPrice")
    return f"{kind} {side} {size}" + (f" at {at:g}" if at else "")


async def sweep_stops(
    stops: ConditionalOrders,
    symbols: list[str],
    own_tag: str,
    action: str,
    say: Callable[[str, str, str], None],
) -> dict[str, Any]:
    """Adopt or cancel the conditional orders of an earlier run of this strategy on
    ``symbols`` (``action``: ``[strategy] leftover_orders``); what was done, for the
    sweep's record."""
    kept: dict[str, list[dict[str, Any]]] = {}
    gone: dict[str, list[dict[str, Any]]] = {}
    for symbol in symbols:
        try:
            listed = await stops.standing(symbol)
        except Exception as exc:
            say(
                "warn",
                "START_STOPS_UNLISTED",
                f"could not list the conditional orders standing on {symbol} "
                f"({describe_error(exc)}): any an earlier run of this strategy left there "
                "stay as they are, and [protect] may place its stop beside one",
            )
            continue
        for o in listed:
            if perpbot_strategy_tag(o.get("clientOrderId")) != own_tag or stops.orders.is_ours(o):
                continue
            adopt = o.get("closePosition") or action == "adopt"
            (kept if adopt else gone).setdefault(symbol, []).append(o)
    record: dict[str, Any] = {}
    for symbol, orders in gone.items():
        left = []
        for o in orders:
            try:
                await stops.cancel(o, symbol)
            except Exception as exc:
                left.append(f"{o.get('clientOrderId')} ({describe_error(exc)})")
        if left:
            sentence = (
                f"refusing to start: could not cancel the conditional order(s) an earlier run "
                f"of this strategy left on {symbol}: {', '.join(left)}; nothing was armed "
                "(cancel them with perpbot kill --direct --level flatten, or by hand)"
            )
            say("alert", "START_LEFTOVER_STOPS_LEFT", sentence)
            raise PerpbotError(sentence)
    if gone:
        record["cancelled"] = _ids(gone)
        say(
            "info",
            "START_LEFTOVER_STOPS_CANCELLED",
            f"cancelled {sum(map(len, gone.values()))} conditional order(s) an earlier run of "
            f"this strategy left standing ({_named(gone)}) before arming anything "
            '([strategy] leftover_orders = "cancel"; closePosition ones are kept)',
        )
    for orders in kept.values():
        for o in orders:
            stops.adopt(o)
    if kept:
        record["adopted"] = _ids(kept)
        say(
            "info",
            "START_LEFTOVER_STOPS_ADOPTED",
            f"adopted {sum(map(len, kept.values()))} conditional order(s) an earlier run of "
            f"this strategy left standing ({_named(kept)}): they are this run's now; a "
            "closePosition one can only close, so it keeps protecting the position it stands "
            "on ([protect] keeps it as that position's stop rather than placing a second)",
        )
    return record
