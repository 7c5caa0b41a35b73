"""Sentences a trader understands for every budget change and every long wait.

"If you cannot explain why a limit changed, you cannot manage the risk it created": each
sentence names the budget, its old and new value, the exchange's limit and what caused it,
with a wall-clock time, e.g. ``weight budget cut 2280 -> 1140 per 1m (exchange limit 2400)
after 429 with Retry-After 12 s on POST /fapi/v1/order at 12:03:04``.
"""

from __future__ import annotations

import time

from perpbot.ratelimit.rules import window_label


def clock(ts: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(ts))


def _secs(s: float) -> str:
    return f"{s:.0f} s" if s >= 10 or s == int(s) else f"{s:.1f} s"


def _noun(kind: str | None) -> str:
    return {"orders": "order-count", "connections": "new-connection"}.get(kind or "", "weight")


def _pushback_cause(retry_after: float, path: str, now: float) -> str:
    return f"429 with Retry-After {_secs(retry_after)} on {path} at {clock(now)}"


def tighten_sentence(
    *,
    kind: str,
    window_s: int,
    old: int | None,
    new: int | None,
    nominal: int | None,
    retry_after: float,
    path: str,
    now: float,
) -> str:
    limit = f" (exchange limit {nominal})" if nominal else ""
    cause = _pushback_cause(retry_after, path, now)
    return (
        f"{_noun(kind)} budget cut {old} -> {new} per {window_label(window_s)}{limit} after {cause}"
    )


def retry_after_sentence(*, retry_after: float, path: str, now: float) -> str:
    """A 429 that cut no budget (one already cut in this Retry-After period)."""
    cause = _pushback_cause(retry_after, path, now)
    return f"exchange pushed back: {cause}; no request leaves until it has passed"


def recover_sentence(
    *,
    kind: str,
    window_s: int,
    old: int | None,
    new: int | None,
    nominal: int | None,
    recover_after_s: float,
    now: float,
) -> str:
    per = window_label(window_s)
    return (
        f"{_noun(kind)} budget raised {old} -> {new} per {per} (exchange limit {nominal}) "
        f"after {_secs(recover_after_s)} without pushback, at {clock(now)}"
    )


def limit_changed_sentence(
    *, kind: str, window_s: int, old: int | None, new: int, source: str, now: float
) -> str:
    per = window_label(window_s)
    where = "the exchange's exchangeInfo" if source == "exchange" else "[limits] in the strategy"
    if old is None:
        return f"{_noun(kind)} limit {new} per {per} read from {where} at {clock(now)}"
    verb = "lowered" if new < old else "raised"
    return f"{where} {verb} the {_noun(kind)} limit {old} -> {new} per {per} at {clock(now)}"


def ban_sentence(*, retry_after: float, path: str, now: float) -> str:
    return (
        f"exchange banned this IP (418) for {_secs(retry_after)} after {path} at {clock(now)}; "
        f"no request leaves until {clock(now + retry_after)}"
    )


def wait_sentence(
    *,
    reason: str,
    what: str,
    wait_s: float,
    bucket: str | None,
    used: int,
    cap: int | None,
    now: float,
) -> str:
    until = clock(now + wait_s)
    if reason == "ban":
        return f"holding {what} {_secs(wait_s)}: the exchange's 418 ban lasts until {until}"
    if reason == "retry_after":
        return f"holding {what} {_secs(wait_s)}: honouring the exchange's Retry-After until {until}"
    if reason == "refresh":
        return f"holding {what} {_secs(wait_s)}: re-reading the exchange's published limits"
    kind = {"orders": "order-count", "connections": "new-connection"}.get(
        (bucket or "").split("/", 1)[0], "weight"
    )
    per = window_label(int(bucket.split("/")[1][:-1])) if bucket else "window"
    if reason == "reserve":
        return (
            f"holding {what} {_secs(wait_s)}: {kind} budget {used}/{cap} per {per} used by "
            f"ordinary requests; the rest is kept for cancels, reduce-only orders and the "
            f"kill switch ([limits] reserve_pct); the window resets at {until}"
        )
    return (
        f"holding {what} {_secs(wait_s)}: {kind} budget {used}/{cap} per {per} used, "
        f"the window resets at {until}"
    )


def too_heavy_sentence(
    *, http_method: str, path: str, bucket: str | None, cost: int, limit: int | None
) -> str:
    kind = "order count" if (bucket or "").startswith("orders") else "weight"
    per = window_label(int((bucket or "x/1s").split("/")[1][:-1]))
    return (
        f"{http_method} {path} costs {cost} {kind}, more than the exchange's whole limit "
        f"of {limit} per {per}: it can never be sent; ask for less (e.g. a smaller limit)"
    )
