"""Pre-trade checks: pure functions of (an order and what the bot knows) and ``[risk]``.

Each check returns None (pass) or a ``Rejection`` with a reason code and a sentence that
names the limit, its config key and the values. ``CHECKS`` is the table the gate runs in
order; the first rejection wins. A row marked ``reducing=False`` is skipped for orders that
are flagged reduce-only (and passed the reduce-only check): exposure limits must never stop
a bot from getting smaller.

Nothing here does I/O or keeps state, so the whole pass costs a few microseconds
(``bench/risk.py``) and every check is tested with a table of cases.
"""

from __future__ import annotations

from collections.abc import Sequence

from perpbot.config import RiskSection
from perpbot.risk.exposure import (
    check_leverage,
    check_margin,
    check_order_notional,
    check_position_notional,
)
from perpbot.risk.inputs import (
    CheckInput,
    CheckRow,
    Rejection,
    describe,
    num,
    scopes,
)

ORDER_FLAGS: dict[str, frozenset[str]] = {
    "limit": frozenset({"post_only", "reduce_only"}),
    "market": frozenset({"reduce_only"}),
    "stop": frozenset({"reduce_only"}),
    "stop_market": frozenset({"reduce_only"}),
    "take_profit": frozenset({"reduce_only"}),
    "take_profit_market": frozenset({"reduce_only"}),
}
POST_ONLY_TIFS = frozenset({None, "GTX", "PO"})


def check_reduce_only_mode(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    if i.reduce_only_reason is None:
        return None
    return Rejection(
        "reduce_only_mode",
        "RISK_REDUCE_ONLY_MODE",
        f"the bot is reduce-only because {i.reduce_only_reason}: refused {describe(i.spec)}, "
        "which is not reduce-only",
        {"symbol": i.spec.symbol, "reason": i.reduce_only_reason},
    )


def check_flags(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    s = i.spec
    allowed = ORDER_FLAGS.get(s.type.lower())
    wanted = [n for n, on in (("post_only", s.post_only), ("reduce_only", s.reduce_only)) if on]
    for flag in wanted:
        if allowed is None or flag not in allowed:
            word = flag.replace("_", "-")
            return Rejection(
                "flags",
                "RISK_POST_ONLY_UNSUPPORTED" if flag == "post_only" else "RISK_FLAG_UNSUPPORTED",
                f"a {s.type} order cannot carry {word} on this exchange (it would be dropped "
                f"or ignored): refused {describe(s)}"
                + ("; post-only needs a limit order" if flag == "post_only" else ""),
                {"symbol": s.symbol, "type": s.type, "flag": flag},
            )
    tif = s.time_in_force.upper() if s.time_in_force else None
    if s.post_only and tif not in POST_ONLY_TIFS:
        return Rejection(
            "flags",
            "RISK_POST_ONLY_TIF",
            f"post-only and time_in_force {tif} contradict each other (post-only is sent as "
            f"GTX): refused {describe(s)}",
            {"symbol": s.symbol, "time_in_force": tif},
        )
    return None


def check_reduce_only(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    s = i.spec
    if not s.closes:  # reduce-only, or a hedge-mode close (its side's position: i.position)
        return None
    pos = i.position
    data = {"symbol": s.symbol, "position": pos, "amount": s.amount}
    if not pos:
        return Rejection(
            "reduce_only",
            "RISK_REDUCE_ONLY_NO_POSITION",
            f"reduce-only {s.side} {num(s.amount)} {s.symbol} has nothing to reduce: the "
            "position is flat",
            data,
        )
    if (pos > 0) == (s.side == "buy"):
        side = "long" if pos > 0 else "short"
        return Rejection(
            "reduce_only",
            "RISK_REDUCE_ONLY_WRONG_SIDE",
            f"reduce-only {s.side} {num(s.amount)} {s.symbol} would grow the {side} "
            f"{num(abs(pos))} position instead of reducing it",
            data,
        )
    if s.amount > i.reduce_only_room + 1e-9 * max(1.0, abs(pos)):  # float dust
        unsettled = i.reduce_only_unsettled
        held = max(0.0, abs(pos) - i.reduce_only_room - unsettled)
        parts = []
        if held > 1e-12:
            parts.append(f"{num(held)} held by the bot's other open reduce-only orders")
        if unsettled > 1e-12:
            parts.append(
                f"{num(unsettled)} that reduce-only orders may have closed since the position "
                "was last read (cancelled or filled; the next reconcile or ctx.refresh() "
                "settles it)"
            )
        return Rejection(
            "reduce_only",
            "RISK_REDUCE_ONLY_EXCEEDS",
            f"reduce-only {s.side} {num(s.amount)} {s.symbol} would exceed the "
            f"{num(abs(pos))} position with {' and '.join(parts) or 'what is already reserved'}"
            f" (room left: {num(i.reduce_only_room)})",
            {**data, "room": i.reduce_only_room, "held": held, "unsettled": unsettled},
        )
    return None


def check_decision_age(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    limit = cfg.max_decision_age_s
    at = i.spec.decided_at
    if limit is None or at is None:
        return None
    age = i.now - at
    if age <= limit:
        return None
    return Rejection(
        "decision_age",
        "RISK_STALE_PRICE",
        f"{describe(i.spec)} was decided on a price seen {age:.1f} s ago, older than "
        f"[risk] max_decision_age_s {num(limit)} s",
        {"symbol": i.spec.symbol, "age_s": round(age, 3), "limit_s": limit},
    )


def check_price_band(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    band = cfg.band_fraction
    s = i.spec
    # a priceMatch order is judged at the book's matched level (the band edge it is valued
    # at without a fresh book is no price it would be given)
    price = i.match_price if s.price_match and i.match_from_book else s.price
    if band is None or s.type != "limit" or not price:
        return None
    if cfg.price_band_pct is not None:
        key, limit = "[risk] price_band_pct", f"{num(cfg.price_band_pct)} %"
    else:
        key, limit = "[risk] price_band_bps", f"{num(cfg.price_band_bps or 0.0)} bps"
    if i.index is None:
        return Rejection(
            "price_band",
            "RISK_NO_INDEX",
            f"no trustworthy index price for {s.symbol} ({i.index_note or 'none yet'}), so "
            f"{key} cannot be checked: refused {describe(s)}",
            {"symbol": s.symbol, "note": i.index_note},
        )
    off = (price - i.index) / i.index
    if abs(off) <= band:
        return None
    where = "above" if off > 0 else "below"
    return Rejection(
        "price_band",
        "RISK_PRICE_BAND",
        f"limit {s.side} at {num(price)} is {abs(off) * 100:.2f} % {where} the index "
        f"{num(i.index)}, outside {key} {limit}",
        {"symbol": s.symbol, "price": price, "index": i.index, "off_pct": off * 100},
    )


def check_open_orders(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    sym = i.spec.symbol
    for limits, prefix, scope in scopes(cfg, sym):
        cap = limits.max_open_orders
        if cap is None:
            continue
        count = len(i.orders) if prefix == "[risk]" else sum(o.symbol == sym for o in i.orders)
        if count >= cap:
            return Rejection(
                "open_orders",
                "RISK_MAX_OPEN_ORDERS",
                f"{count} open orders {scope} already, {prefix} max_open_orders is "
                f"{cap}: refused {describe(i.spec)}",
                {"symbol": sym, "open": count, "limit": cap},
            )
    return None


def _rate(i: CheckInput, cfg: RiskSection, attr: str, counts: tuple[int, int]) -> Rejection | None:
    sym = i.spec.symbol
    word = "orders" if attr == "max_order_rate" else "cancels"
    for limits, prefix, scope in scopes(cfg, sym):
        cap = getattr(limits, attr)
        if cap is None:
            continue
        n = counts[0] if prefix != "[risk]" else counts[1]
        if n >= cap:
            tail = (
                " (a cancel-replace loop?): new orders wait until the cancel rate falls"
                if word == "cancels"
                else ""
            )
            return Rejection(
                attr.removeprefix("max_"),
                "RISK_ORDER_RATE" if word == "orders" else "RISK_CANCEL_RATE",
                f"{n} {word} {scope} in the last {num(cfg.rate_window_s)} s reached {prefix} "
                f"{attr} {cap} per {num(cfg.rate_window_s)} s{tail}: refused {describe(i.spec)}",
                {"symbol": sym, "count": n, "limit": cap, "window_s": cfg.rate_window_s},
            )
    return None


def check_order_rate(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    return _rate(i, cfg, "max_order_rate", (i.rates.orders_symbol, i.rates.orders_bot))


def check_cancel_rate(i: CheckInput, cfg: RiskSection) -> Rejection | None:
    return _rate(i, cfg, "max_cancel_rate", (i.rates.cancels_symbol, i.rates.cancels_bot))


CHECKS: tuple[CheckRow, ...] = (
    CheckRow("reduce_only_mode", check_reduce_only_mode, reducing=False),
    CheckRow("flags", check_flags, reducing=True),
    CheckRow("reduce_only", check_reduce_only, reducing=True),
    CheckRow("decision_age", check_decision_age, reducing=True),
    CheckRow("price_band", check_price_band, reducing=True),
    CheckRow("order_rate", check_order_rate, reducing=True),
    CheckRow("cancel_rate", check_cancel_rate, reducing=False),
    CheckRow("open_orders", check_open_orders, reducing=False),
    CheckRow("order_notional", check_order_notional, reducing=False),
    CheckRow("position_notional", check_position_notional, reducing=False),
    CheckRow("leverage", check_leverage, reducing=False),
    CheckRow("margin", check_margin, reducing=False),
)


def run_checks(
    i: CheckInput, cfg: RiskSection, checks: Sequence[CheckRow] = CHECKS
) -> Rejection | None:
    """The first rejection of the table, or None when the order may go."""
    reducing = i.spec.closes
    for row in checks:
        if reducing and not row.reducing:
            continue
        rejection = row.fn(i, cfg)
        if rejection is not None:
            return rejection
    return None
