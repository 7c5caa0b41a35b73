"""Closing positions for the kill switch's ``flatten`` level, with reduce-only orders only.

For each symbol, until the exchange reports the position flat:

1. up to ``limit_attempts`` reduce-only IOC limit orders priced at the touch (best bid to
   sell, best ask to buy) moved by the slippage cap: they fill against the book up to the
   cap and never rest;
2. then reduce-only market orders (the cap could not be met: get out anyway);

re-reading the position from the exchange after every order, and giving up (with an error
naming what is left) after ``timeout_s``. That is ``[kill] flatten_policy = "capped"`` (the
default); the exit executor's policies (perpbot.exits, docs/exits.md: ``market``,
``slices``, ``passive-then-aggressive``, ``adaptive``) close each symbol when named there.
Reduce-only means none of these orders can open or flip a position, even if a fill lands
twice or another process closes the position at the same time.

Once a symbol is confirmed flat, its conditional orders (stops, take-profits, trailing
stops: Binance's Algo Order API) are cancelled with one ``DELETE /fapi/v1/algoOpenOrders``
for the symbol: with no position left they protect nothing, and an opening stop could put a
position back after the switch flattened it. A symbol that is not flat keeps them (the
position still needs its stop). See docs/kill.md.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from perpbot.client.position_side import leg_key
from perpbot.client.request import OrderSpec
from perpbot.errors import describe_error
from perpbot.events import Decision
from perpbot.exits import ExitConfig, ExitVenue, run_exit
from perpbot.exits.blockers import (
    FreeReduceOnly,
    blocked_sentence,
    freed_sentence,
    is_held_refusal,
    reduce_only_freer,
)
from perpbot.exits.venue import leg_venue
from perpbot.kill.ops import ExchangeOps

INTENT = "kill-flatten"
MARKET_PAUSE_S = 0.2


@dataclass
class FlattenPolicy:
    slippage_pct: float = 0.5
    limit_attempts: int = 3
    timeout_s: float = 30.0
    exit_policy: str = "capped"  # or an exit executor policy (perpbot.exits.POLICIES)


@dataclass(slots=True)
class FlattenReport:
    closed: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    left: dict[str, float | None] = field(default_factory=dict)  # None: position unknown
    stops_cancelled: list[str] = field(default_factory=list)  # symbols whose algo orders went


async def touch_price(ops: ExchangeOps, symbol: str, side: str) -> float:
    """The best price an order on ``side`` can trade at now (book top, else last price)."""
    book = await ops.client.fetch_order_book(symbol, 5)
    levels = book.get("bids") if side == "sell" else book.get("asks")
    if levels:
        return float(levels[0][0])
    ticker = await ops.client.fetch_ticker(symbol)
    return float(ticker.get("last") or ticker.get("close") or 0.0)


def capped_price(
    ops: ExchangeOps, symbol: str, side: str, ref: float, slippage_pct: float
) -> float:
    cap = slippage_pct / 100.0
    raw = ref * (1.0 - cap) if side == "sell" else ref * (1.0 + cap)
    return float(ops.client.exchange.price_to_precision(symbol, raw))


def _order_record(
    spec: OrderSpec, order: dict[str, Any] | None, error: str | None
) -> dict[str, Any]:
    return {
        "type": spec.type,
        "side": spec.side,
        "amount": spec.amount,
        "price": spec.price,
        "reduce_only": spec.reduce_only,
        "position_side": spec.position_side,
        "time_in_force": spec.time_in_force,
        "client_order_id": spec.client_order_id,
        "status": (order or {}).get("status"),
        "filled": (order or {}).get("filled"),
        "average": (order or {}).get("average"),
        "error": error,
    }


def account_freer(ops: ExchangeOps) -> FreeReduceOnly:
    """The flatten cancels any reduce-only order of the account that holds the position it
    closes (exits/blockers.py): it acts for the account's owner."""
    return reduce_only_freer(ops.client.fetch_open_orders, ops.cancel_one)


async def _free_held(
    ops: ExchangeOps, symbol: str, side: str, exc: BaseException, rec: dict[str, Any]
) -> bool:
    """A capped child refused for the room resting reduce-only orders hold: cancel them,
    said (EXIT_REDUCE_ONLY_FREED); True when any went (the child is sent again at once)."""
    try:
        freed = await account_freer(ops)(symbol, side)
    except Exception as error:  # said; the refusal stands and the flatten goes on
        rec.setdefault("errors", []).append(f"cancel reduce-only orders: {describe_error(error)}")
        freed = []
    if freed:
        sentence = freed_sentence(symbol, freed)
        rec.setdefault("freed", []).extend(
            {"id": o.get("id"), "client_order_id": o.get("clientOrderId")} for o in freed
        )
        ops.client.bus.publish(
            Decision("exit", "act", "EXIT_REDUCE_ONLY_FREED", sentence, {"symbol": symbol})
        )
        return True
    if "blocked" not in rec:
        rec["blocked"] = blocked_sentence(
            symbol, describe_error(exc), "this flatten could not cancel"
        )
        ops.client.bus.publish(
            Decision("exit", "act", "EXIT_REDUCE_ONLY_BLOCKED", rec["blocked"], {"symbol": symbol})
        )
    return False


async def flatten_symbol(
    ops: ExchangeOps,
    symbol: str,
    policy: FlattenPolicy,
    deadline: float,
    position_side: str | None = None,
) -> tuple[dict[str, Any] | None, list[str]]:
    """Close ``symbol``'s position (hedge mode: its ``position_side`` one, with closing
    orders of that side instead of reduce-only ones); (record or None when flat, errors)."""
    errors: list[str] = []
    start = await ops.position(symbol, position_side)
    if not start:
        return None, errors
    rec: dict[str, Any] = {"symbol": symbol, "from": start, "to": start, "orders": []}
    if position_side is not None:
        rec["position_side"] = position_side
    flags: dict[str, Any] = {"reduce_only": position_side is None, "position_side": position_side}
    amount, attempts = start, 0
    while amount and time.monotonic() < deadline:
        side = "sell" if amount > 0 else "buy"
        qty = float(ops.client.exchange.amount_to_precision(symbol, abs(amount)))
        if attempts < policy.limit_attempts:
            ref = await touch_price(ops, symbol, side)
            price = capped_price(ops, symbol, side, ref, policy.slippage_pct)
            spec = OrderSpec(
                symbol, side, "limit", qty, price, time_in_force="IOC",
                intent=INTENT, decided_price=ref, decided_at=time.time(), **flags,
            )  # fmt: skip
        else:
            spec = OrderSpec(symbol, side, "market", qty, None, intent=INTENT, **flags)
        attempts += 1
        try:
            order = await ops.place(spec)
            rec["orders"].append(_order_record(spec, order, None))
        except Exception as exc:
            rec["orders"].append(_order_record(spec, None, describe_error(exc)))
            held = is_held_refusal(exc) and spec.reduce_only
            if held and await _free_held(ops, symbol, side, exc, rec):
                attempts -= 1  # held back, not tried: the same step is sent again
                continue
            if attempts > policy.limit_attempts:
                await asyncio.sleep(MARKET_PAUSE_S)
        amount = await ops.position(symbol, position_side)
        rec["to"] = amount
    errors.extend(rec.pop("errors", []))
    blocked = rec.pop("blocked", None)
    if amount:
        what = symbol if position_side is None else f"{symbol} {position_side}"
        errors.append(
            f"{what}: position still {amount:+g} after {attempts} reduce-only order(s) "
            f"in {policy.timeout_s:g} s"
        )
        if blocked:
            errors.append(blocked)
    return rec, errors


async def exit_symbol(
    ops: ExchangeOps, symbol: str, policy: FlattenPolicy, position_side: str | None = None
) -> tuple[dict[str, Any] | None, list[str]]:
    """Close ``symbol`` (hedge mode: its ``position_side`` side) with the exit executor's
    ``policy.exit_policy``."""
    venue = ExitVenue(ops.client, ops.place, ops.cancel_one, ops.held, account_freer(ops))
    if position_side is not None:
        side = position_side
        venue = leg_venue(venue, side, lambda s: ops.held(s, side))
    cfg = ExitConfig(timeout_s=policy.timeout_s, asked_by="kill:flatten", intent=INTENT)
    res = await run_exit(venue, symbol, policy.exit_policy, cfg)
    if res is None:
        return None, []
    rec = {"symbol": symbol, "from": res.start, "to": res.left, "orders": res.orders}
    if position_side is not None:
        rec["position_side"] = position_side
    rec |= {"policy": res.policy, "shortfall_bps": round(res.shortfall_bps, 2)}
    rec["switches"] = res.switches
    if res.freed:
        rec["freed"] = res.freed
    return rec, res.errors


async def flatten_positions(
    ops: ExchangeOps, symbols: list[str], policy: FlattenPolicy
) -> FlattenReport:
    """Flatten every symbol at once (on a hedge-mode account each side that holds a
    position: ``report.left`` then names it ``SYMBOL|LONG``); each one's failure is
    reported, not raised."""
    report = FlattenReport()
    deadline = time.monotonic() + policy.timeout_s
    found = await asyncio.gather(*(ops.sides(s) for s in symbols), return_exceptions=True)
    targets: list[tuple[str, str | None]] = []
    for symbol, sides in zip(symbols, found, strict=True):
        if isinstance(sides, BaseException):
            report.errors.append(f"flatten {symbol}: {describe_error(sides)}")
            report.left[symbol] = None
            continue
        targets.extend((symbol, side) for side in sides)
    if policy.exit_policy == "capped":
        jobs = [flatten_symbol(ops, s, policy, deadline, side) for s, side in targets]
    else:
        jobs = [exit_symbol(ops, s, policy, side) for s, side in targets]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    for (symbol, side), result in zip(targets, results, strict=True):
        key = leg_key(symbol, side)
        if isinstance(result, BaseException):
            report.errors.append(f"flatten {key}: {describe_error(result)}")
            report.left[key] = None
            continue
        rec, errors = result
        if rec is not None:
            report.closed.append(rec)
            if rec["to"]:
                report.left[key] = rec["to"]
        report.errors.extend(errors)
    held = {key.split("|")[0] for key in report.left}
    flat = [s for s in symbols if s not in held]
    done = await asyncio.gather(*(cancel_stops(ops, s) for s in flat), return_exceptions=True)
    for symbol, result in zip(flat, done, strict=True):
        if isinstance(result, BaseException):
            report.errors.append(f"cancel conditional orders {symbol}: {describe_error(result)}")
        else:
            report.stops_cancelled.append(symbol)
    return report


async def cancel_stops(ops: ExchangeOps, symbol: str) -> None:
    """Cancel every conditional order on ``symbol`` (the position there is flat)."""
    market_id = ops.client.market(symbol)["id"]
    await ops.client.call(
        "fapiprivate_delete_algoopenorders", {"symbol": market_id}, symbol=symbol, intent=INTENT
    )
