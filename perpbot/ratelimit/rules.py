"""Where budgets come from: the exchange's published ``rateLimits``, else ``[limits]``.

Binance publishes its limits in ``exchangeInfo.rateLimits`` (REQUEST_WEIGHT per IP,
ORDERS per account, each with an interval). perpbot reads them at connect time (from the
``load_markets`` response) and again every ``[limits] refresh_s``, so a limit the exchange
lowers mid-run is followed; the strategy.toml values are only a fallback for exchanges that
publish nothing. No limit is a constant in the code: constants go stale and get users banned.

Usage headers (``X-MBX-USED-WEIGHT-1M``, ``X-MBX-ORDER-COUNT-10S``...) name their window the
same way, so they map onto the same buckets (the transport reads them:
``perpbot.client.headers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from perpbot.config import LimitsSection

Kind = Literal["weight", "orders", "connections"]  # connections: perpbot.ratelimit.connections

_INTERVAL_S = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400}


@dataclass(frozen=True, slots=True)
class Rule:
    """One published limit: ``limit`` units of ``kind`` per ``window_s`` seconds."""

    kind: Kind
    window_s: int
    limit: int


@dataclass(frozen=True, slots=True)
class RuleSet:
    rules: tuple[Rule, ...]
    source: Literal["exchange", "config"]

    def of(self, kind: Kind) -> list[Rule]:
        return [r for r in self.rules if r.kind == kind]


def from_exchange_info(payload: Any) -> RuleSet | None:
    """The budgets an ``exchangeInfo`` payload publishes, or None when it publishes none."""
    if not isinstance(payload, Mapping):
        return None
    raw = payload.get("rateLimits")
    if not isinstance(raw, list):
        return None
    rules: list[Rule] = []
    for item in raw:
        if not isinstance(item, Mapping):
            continue
        kind = {"REQUEST_WEIGHT": "weight", "ORDERS": "orders"}.get(str(item.get("rateLimitType")))
        unit = _INTERVAL_S.get(str(item.get("interval", "")).upper())
        try:
            num, limit = int(item.get("intervalNum", 1)), int(item["limit"])
        except (KeyError, TypeError, ValueError):
            continue
        if kind is None or unit is None or num <= 0 or limit <= 0:
            continue  # RAW_REQUESTS and anything unknown: not budgeted
        rules.append(Rule(kind=kind, window_s=unit * num, limit=limit))  # type: ignore[arg-type]
    if not rules:
        return None
    return RuleSet(
        rules=tuple(sorted(set(rules), key=lambda r: (r.kind, r.window_s))), source="exchange"
    )


def from_config(limits: LimitsSection) -> RuleSet | None:
    """The ``[limits]`` fallback (used only when the exchange publishes nothing)."""
    rules: list[Rule] = []
    if limits.weight_per_minute:
        rules.append(Rule(kind="weight", window_s=60, limit=limits.weight_per_minute))
    if limits.orders_per_10s:
        rules.append(Rule(kind="orders", window_s=10, limit=limits.orders_per_10s))
    if limits.orders_per_minute:
        rules.append(Rule(kind="orders", window_s=60, limit=limits.orders_per_minute))
    return RuleSet(rules=tuple(rules), source="config") if rules else None


def window_label(window_s: int) -> str:
    """60 -> '1m', 10 -> '10s', 3600 -> '1h' (the way the headers name windows)."""
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if window_s % size == 0:
            return f"{window_s // size}{unit}"
    return f"{window_s}s"
