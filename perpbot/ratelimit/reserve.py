"""The reserve of the rate budget (``[limits] reserve_pct``): what it holds, what is used of
it, and whether the dead-man's refreshes would eat it.

Of each cap, the reserve is what only risk-reducing requests may use (budget.py): the cap less
the ordinary cap. In the current window, what the requests brought ``used`` above the
ordinary cap came out of the reserve.

The dead-man's refreshes (``countdownCancelAll``, 10 weight per symbol on Binance) reduce
risk, so they draw on the reserve too: a bot on many symbols, refreshing often, can leave
nothing of it for a kill's cancels (which then wait for the window). ``deadman_warning``
says so at start when the refreshes would take more than half of it.
"""

from __future__ import annotations

import math
from typing import Any

from perpbot.ratelimit.budget import Bucket, Policy
from perpbot.ratelimit.rules import window_label
from perpbot.weights import request_cost

DEADMAN_REQUEST = ("POST", "/fapi/v1/countdownCancelAll")
# the ccxt method the dead-man calls (perpbot.kill.deadman.COUNTDOWN_METHOD: the rate limiter
# imports no other concern); an exchange without it has no dead-man to refresh
DEADMAN_METHOD = "fapiprivate_post_countdowncancelall"
# ... and its default cadence: a symbol's countdown is refreshed once this share of it has
# passed (perpbot.kill.deadman.REFRESH_FRACTION, kept equal by a test)
DEADMAN_REFRESH_FRACTION = 0.5
WARN_SHARE = 0.5  # of the reserve the dead-man's refreshes may take before the start warns
MAX_RESERVE_PCT = 50  # what [limits] reserve_pct allows


def reserve_status(b: Bucket, now: float, policy: Policy) -> dict[str, Any]:
    """The reserve of bucket ``b``: its share, its size and what the current window used of
    it (``weight`` and ``used`` are None while the bucket has no limit)."""
    cap = b.cap(policy.safety_margin)
    ordinary = b.ordinary_cap(policy.safety_margin, policy.reserve)
    current = b.start <= now < b.start + b.window_s
    used = b.used if current else 0
    size = None if cap is None or ordinary is None else cap - ordinary
    return {
        "pct": round(policy.reserve * 100.0, 2),
        "weight": size,
        "used": None if ordinary is None else max(0, used - ordinary),
        "window": window_label(b.window_s),
        "window_s": b.window_s,
    }


def deadman_warning(
    *, symbols: int, refresh_s: float, countdown_s: float, reserve: dict[str, Any], cap: int
) -> str | None:
    """One sentence when the dead-man's refreshes on ``symbols`` symbols would take more
    than half the reserve of the weight budget (``reserve`` as ``reserve_status`` says it,
    ``cap`` the weight cap per window), else None."""
    size, window_s = reserve.get("weight"), reserve.get("window_s")
    if not symbols or not size or not window_s or refresh_s <= 0:
        return None if size else _no_reserve(symbols, reserve)
    weight, _orders = request_cost(*DEADMAN_REQUEST, {})
    per_window = math.ceil(weight * symbols * window_s / refresh_s)
    if per_window <= size * WARN_SHARE:
        return None
    window = reserve.get("window") or window_label(int(window_s))
    fixes = []
    pct = math.ceil(100.0 * per_window / (cap * WARN_SHARE))
    if pct <= MAX_RESERVE_PCT:
        fixes.append(f"[limits] reserve_pct = {pct}")
    slower = math.ceil(weight * symbols * window_s / (size * WARN_SHARE))
    if slower < countdown_s:
        fixes.append(f"[kill] deadman_refresh_s = {slower} (below deadman_countdown_s)")
    fix = " or ".join(fixes) or "fewer symbols per bot"
    return (
        f"the dead-man's refreshes on {symbols} symbol(s) ({weight} weight each, every "
        f"{refresh_s:g} s: {per_window} weight per {window}) would take "
        f"{100.0 * per_window / size:.0f}% of the rate reserve ({size} of the {cap} weight per "
        f"{window}, [limits] reserve_pct = {reserve.get('pct'):g}) kept for cancels, "
        f"reduce-only orders and the kill switch, so a kill's cancels could wait for the next "
        f"window; set {fix}"
    )


def _no_reserve(symbols: int, reserve: dict[str, Any]) -> str | None:
    """With a weight limit but ``reserve_pct = 0``, every refresh competes with the strategy."""
    if not symbols or reserve.get("pct") or reserve.get("weight") is None:
        return None
    return (
        f"[limits] reserve_pct = 0: the dead-man's refreshes on {symbols} symbol(s) and a "
        "kill's cancels get no rate reserve, so they wait behind the strategy's requests "
        "when its budget is spent; set [limits] reserve_pct (default 10)"
    )
