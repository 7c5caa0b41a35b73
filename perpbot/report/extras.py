"""Reading the sections other concerns add to ticks, by shape rather than one exact schema.

The rate limiter writes ``rate`` (``weight_used``, ``weight_limit``, ``weight_nominal`` plus
per-window order buckets); the risk layer writes ``risk.index`` (per symbol an index ``price``,
its health and sources). A report of an older or newer run should still draw what it can, so
these readers accept the shapes such sections plausibly take and return None when they find
nothing usable.
"""

from __future__ import annotations

import math
from typing import Any

# Keys the rate section may use for each quantity (first match wins).
RATE_USED = ("weight_used", "used", "used_weight", "weight", "used_1m")
RATE_LIMIT = ("weight_limit", "limit", "current_limit", "effective_limit", "budget")
RATE_NOMINAL = ("weight_nominal", "nominal", "nominal_limit", "exchange_limit")
INDEX_PRICE = ("price", "index", "index_price", "value", "median")


def num(x: Any) -> float | None:
    """A finite float, or None for anything else (missing, null, text, NaN, a bool)."""
    if type(x) is float:  # the common case, fast
        return x if math.isfinite(x) else None
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _first(d: dict[str, Any], keys: tuple[str, ...]) -> float | None:
    for k in keys:
        if k in d:
            v = num(d[k])
            if v is not None:
                return v
    return None


def rate_figures(rate: Any) -> tuple[float | None, float | None, float | None]:
    """(used, limit, nominal) out of a tick's ``rate`` section, whatever its nesting.

    Accepts a flat dict, or one level of buckets (``{"weight": {...}, "orders": {...}}``;
    the request-weight bucket is preferred, as it is the one that gets an IP banned).
    """
    if not isinstance(rate, dict):
        return None, None, None
    if "weight_used" in rate:  # the shape perpbot's rate limiter writes
        return (
            num(rate["weight_used"]),
            num(rate.get("weight_limit")),
            num(rate.get("weight_nominal")),
        )
    used, limit, nominal = (_first(rate, k) for k in (RATE_USED, RATE_LIMIT, RATE_NOMINAL))
    if used is not None:
        return used, limit, nominal
    buckets = [(k, v) for k, v in rate.items() if isinstance(v, dict)]
    buckets.sort(key=lambda kv: 0 if "weight" in kv[0].lower() else 1)
    for _, bucket in buckets:
        used = _first(bucket, RATE_USED)
        if used is not None:
            return used, _first(bucket, RATE_LIMIT), _first(bucket, RATE_NOMINAL)
    return None, None, None


def index_section(tick: dict[str, Any]) -> Any:
    """The index section: top-level ``index``, or under the risk layer's ``risk``."""
    if "index" in tick:
        return tick["index"]
    risk = tick.get("risk")
    return risk.get("index") if isinstance(risk, dict) else None


def index_prices(index: Any) -> dict[str, float]:
    """Index price per symbol out of an index section.

    Accepts ``{symbol: price}``, ``{symbol: {"price": ..., "healthy": ..., "sources": ...}}``
    and ``{"prices": {symbol: ...}}`` (or ``"symbols"``). Keys that are not symbols may slip
    through (e.g. a top-level timestamp); readers only look up the run's symbols.
    """
    if not isinstance(index, dict):
        return {}
    for wrapper in ("prices", "symbols", "by_symbol"):
        if isinstance(index.get(wrapper), dict):
            index = index[wrapper]
            break
    out: dict[str, float] = {}
    for sym, v in index.items():
        price = _first(v, INDEX_PRICE) if isinstance(v, dict) else num(v)
        if price is not None:
            out[str(sym)] = price
    return out
