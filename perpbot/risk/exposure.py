"""Exposure checks: order and position notional, leverage, margin after the fill and the
distance to liquidation. Each caps what an order can *add*: an order that leaves exposure
where it was (or smaller) is never refused by them."""

from __future__ import annotations

from typing import Any

from perpbot.client.position_side import leg, leg_key
from perpbot.config import RiskSection
from perpbot.risk.inputs import (
    CheckInput,
    Rejection,
    describe,
    exposure,
    no_price,
    num,
    scopes,
    usd,
)
from perpbot.risk.margin import after_fill, close_slippage


def check_order_notional(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    for limits, prefix, scope in scopes(cfg, i.spec.symbol):
        cap = limits.max_order_notional
        if cap is None:
            continue
        price = i.price
        if price is None:
            return no_price(i, f"{prefix} max_order_notional")
        notional = i.spec.amount * price * i.contract_size
        if notional > cap:
            return Rejection(
                "order_notional",
                "RISK_MAX_ORDER_NOTIONAL",
                f"order notional {usd(notional)} ({num(i.spec.amount)} x {num(price)}) exceeds "
                f"{prefix} max_order_notional {usd(cap)} {scope}",
                {"symbol": i.spec.symbol, "notional": notional, "limit": cap},
            )
    return None


def _before_after(i: CheckInput, prefix: str, price: float) -> tuple[float, float] | None:
    """Worst-case notional before and after the order: the symbol's for a symbol table,
    the bot's gross (every symbol) for ``[risk]``; None when a price is missing. Memoised:
    the notional and the leverage checks ask for the same figures."""
    key = ("before_after", prefix)
    if key in i.memo:
        return i.memo[key]  # type: ignore[no-any-return]
    own = i.spec.symbol
    signed = i.signed
    result: tuple[float, float] | None = (0.0, 0.0)
    before = after = 0.0
    for sym in (own,) if prefix != "[risk]" else i.symbols():
        p = price if sym == own else i.prices.get(sym)
        e0 = exposure(i, sym, 0.0)
        e1 = exposure(i, sym, signed) if sym == own else e0
        if p is None:
            if e0 or e1:
                result = None
                break
            continue
        scale = p * i.contract_size
        before += e0 * scale
        after += e1 * scale
    else:
        result = (before, after)
    i.memo[key] = result
    return result


def check_position_notional(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    sym = i.spec.symbol
    for limits, prefix, scope in scopes(cfg, sym):
        cap = limits.max_position_notional
        if cap is None:
            continue
        key = f"{prefix} max_position_notional"
        price = i.price
        if price is None:
            return no_price(i, key)
        moved = _before_after(i, prefix, price)
        if moved is None:
            return no_price(i, key)
        before, after = moved
        if after > cap and after > before + 1e-9:
            what = f"the {sym} position" if prefix != "[risk]" else "the bot's gross position"
            return Rejection(
                "position_notional",
                "RISK_MAX_POSITION_NOTIONAL",
                f"{describe(i.spec)} could take {what} to {usd(after)} notional (counting open "
                f"orders), above {key} {usd(cap)} {scope}",
                {"symbol": sym, "notional_after": after, "limit": cap},
            )
    return None


def check_leverage(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    sym = i.spec.symbol
    for limits, prefix, scope in scopes(cfg, sym):
        cap = limits.max_leverage
        if cap is None:
            continue
        key = f"{prefix} max_leverage"
        if not i.equity or i.equity <= 0:
            return Rejection(
                "leverage",
                "RISK_NO_EQUITY",
                f"the account equity is not known (or not positive), so {key} cannot be "
                f"checked: refused {describe(i.spec)}",
                {"symbol": sym, "equity": i.equity},
            )
        price = i.price
        if price is None:
            return no_price(i, key)
        moved = _before_after(i, prefix, price)
        if moved is None:
            return no_price(i, key)
        before, after = moved
        lev = after / i.equity
        if lev > cap and after > before + 1e-9:
            return Rejection(
                "leverage",
                "RISK_MAX_LEVERAGE",
                f"{describe(i.spec)} could take leverage {scope} to {lev:.2f}x ({usd(after)} "
                f"notional on {usd(i.equity)} equity), above {key} {num(cap)}x",
                {"symbol": sym, "leverage_after": lev, "limit": cap, "equity": i.equity},
            )
    return None


def check_margin(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    band = cfg.liquidation_band_pct
    m = i.margin
    price = i.price
    if band is None or m is None or price is None:
        return None
    est = after_fill(
        m.account,
        leg_key(i.spec.symbol, i.spec.position_side),  # hedge mode: the order's side
        i.signed * i.contract_size,
        price,
        mark=m.mark,
        leverage=m.leverage,
        brackets=m.brackets,
    )
    if abs(est.amount) <= abs(i.position):
        return None  # the order does not grow the position (hedge mode: its side)
    data: dict[str, Any] = {
        "symbol": i.spec.symbol,
        "position_after": est.amount,
        "available_after": est.available,
        "liquidation_price": est.liquidation_price,
        "mark": m.mark,
    }
    if est.available < 0:
        return Rejection(
            "margin",
            "RISK_MARGIN_INSUFFICIENT",
            f"{describe(i.spec)} would need {usd(-est.available)} more margin than the account "
            f"has free (estimated at {num(m.leverage)}x leverage)",
            data,
        )
    dist = est.distance
    if dist is None:
        return None
    book = m.bids if est.amount > 0 else m.asks
    extra = close_slippage(book, abs(est.amount), m.mark) if book is not None else 0.0
    need = band / 100.0 + extra
    if dist >= need:
        return None
    hedge_side = leg(i.spec.position_side)
    side = f"{hedge_side} side" if hedge_side else "long" if est.amount > 0 else "short"
    depth = f" + {extra * 100:.2f} % to close through the book" if extra else ""
    return Rejection(
        "liquidation_band",
        "RISK_LIQUIDATION_BAND",
        f"after {describe(i.spec)} the {side} {num(abs(est.amount))} would be liquidated at "
        f"about {num(round(est.liquidation_price or 0.0, 2))} (mark {num(m.mark)}, "
        f"{dist * 100:.2f} % away), inside [risk] liquidation_band_pct {num(band)} %{depth}",
        {**data, "distance_pct": dist * 100, "required_pct": need * 100},
    )
