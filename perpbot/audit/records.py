"""Building log records from events, with redaction by allow-list where the record is made.

``ExchangeCall.params`` is already allow-listed by ``perpbot.redact.safe_params`` where the
event is built; it goes through the same filter again here (cheap, and a new event source
that forgot cannot leak through the log). ``Decision.data`` is filtered by
``DECISION_FIELDS``: a field a guard adds is recorded only once it is named here, and
anything else is dropped (its count is kept, never its name or value). Nothing is ever
searched for secrets after the fact.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from perpbot.audit.canonical import finite
from perpbot.client.request import METHOD_CLASS
from perpbot.events import Decision, Event, ExchangeCall
from perpbot.redact import SAFE_FIELDS, safe_params

# What a guard's Decision.data may carry into the log: request fields (SAFE_FIELDS) plus the
# names guards use for limits, budgets, waits, retries, risk checks and kill levels. Never
# key material, and never free-form error text (a ccxt error can quote a signed URL).
DECISION_FIELDS: frozenset[str] = SAFE_FIELDS | frozenset(
    {
        "acted_ms",
        "action",
        "after",
        "age_s",
        "allowed",
        "amount",
        "attempt",
        "attempts",
        "available",
        "available_after",
        "banned_for_s",
        "baseline",
        "baseline_bps",
        "basket",
        "before",
        "blocked_for_s",
        "bps",
        "bucket",
        "budget",
        "cancelled",
        "check",
        "client_order_id",
        "closed",
        "codes",
        "command",
        "count",
        "countdown_s",
        "current",
        "deadline_s",
        "decided_price",
        "delay_s",
        "deviation",
        "distance",
        "distance_pct",
        "entry_id",
        "entry_price",
        "entry_time",
        "equity",
        "estimate",
        "exchange",
        "exposure",
        "factor",
        "filled",
        "fix",
        "funding_annual",
        "funding_rate",
        "good",
        "held",
        "http_418",
        "http_429",
        "http_method",
        "index",
        "index_price",
        "interval_s",
        "key_id",
        "kind",  # a fill the run did not place: liquidation, adl, foreign
        "level",
        "leverage_after",
        "limit",
        "limit_name",
        "limit_s",
        "liquidation_price",
        "maint_margin_ratio",
        "mark",
        "mark_price",
        "max",
        "max_attempts",
        "mean_bps",
        "method",
        "min",
        "missing",
        "new",
        "nominal",
        "notional",
        "notional_after",
        "off_pct",
        "offset_ms",
        "old",
        "order_count",
        "order_id",
        "orders",
        "outcome",
        "outlier",
        "path",
        "position",
        "position_after",
        "probing",
        "profile",
        "ratio",
        "reason",
        "refresh_s",
        "remaining",
        "request_id",
        "required_pct",
        "resting",
        "retry_after",
        "retry_after_s",
        "room",
        "run_id",
        "scope",
        "scopes",
        "seen_ms",
        "source",
        "sources",
        "stale",
        "stale_s",
        "state",
        "status",
        "thin",
        "time_ms",
        "total",
        "trade_id",
        "trip",
        "until",
        "used",
        "value",
        "vol_annual",
        "wait_s",
        "weight",
        "weight_limit",
        "weight_nominal",
        "weight_used",
        "weight_window",
        "window",
        "window_s",
    }
)

MAX_DEPTH = 3
MAX_ITEMS = 64


def _value(value: Any, allowed: frozenset[str], depth: int) -> Any:
    """A JSON-safe copy of an allowed value: scalars, short lists, allow-listed mappings."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return finite(value)
    if depth >= MAX_DEPTH:
        return type(value).__name__
    if isinstance(value, list | tuple):
        return [_value(v, allowed, depth + 1) for v in list(value)[:MAX_ITEMS]]
    if isinstance(value, Mapping):
        kept, _ = allow(value, allowed, depth + 1)
        return kept
    return type(value).__name__  # an object: record its kind, never its repr


def allow(
    data: Mapping[str, Any] | None, allowed: frozenset[str], depth: int = 0
) -> tuple[dict[str, Any], int]:
    """The allow-listed part of ``data`` and how many fields were dropped."""
    if not data:
        return {}, 0
    kept: dict[str, Any] = {}
    dropped = 0
    for key, value in data.items():
        if isinstance(key, str) and key in allowed:
            kept[key] = _value(value, allowed, depth)
        else:
            dropped += 1
    return kept, dropped


@dataclass(frozen=True)
class RecordContext:
    """Who is making the requests: stamped on every record."""

    run: str
    profile: str | None
    command: str


def _common(ctx: RecordContext, kind: str, ts: float, mono: float) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": kind,
        "ts": round(ts, 6),
        "mono": round(mono, 6),
        "run": ctx.run,
        "command": ctx.command,
    }
    if ctx.profile is not None:
        rec["profile"] = ctx.profile
    return rec


def exchange_body(event: ExchangeCall, ctx: RecordContext) -> dict[str, Any]:
    rec = _common(ctx, "exchange", event.ts, event.mono)
    rec.update(
        {
            "req": event.request_id,
            "method": event.method,
            "params": safe_params(event.params),
            "ok": event.ok,
            "latency_ms": finite(float(event.latency_ms)),
        }
    )
    optional = {
        "http": event.http_method,
        "path": event.path,
        "status": event.status,
        "err_code": event.error_code,
        "err_class": event.error_class,
        "symbol": event.symbol,
        "intent": event.intent,
    }
    rec.update({k: v for k, v in optional.items() if v is not None})
    if event.rate_headers:
        rec["rate"] = {str(k).lower(): str(v) for k, v in event.rate_headers.items()}
    return rec


def decision_body(event: Decision, ctx: RecordContext) -> dict[str, Any]:
    rec = _common(ctx, "decision", event.ts, time.monotonic())
    data, dropped = allow(event.data, DECISION_FIELDS)
    rec.update(
        {
            "layer": event.layer,
            "action": event.action,
            "code": event.code,
            "sentence": event.sentence,
            "data": data,
        }
    )
    if dropped:
        rec["dropped"] = dropped
    return rec


# What a fill or order-change record carries (perpbot.engine.events): never the exchange's
# raw ``info``.
FILL_FIELDS = (
    "symbol", "side", "price", "amount", "fee", "fee_currency", "maker", "order_id",
    "client_order_id", "trade_id", "realized_pnl", "intent",
)  # fmt: skip
ORDER_FIELDS = {"id": "order_id", "side": "side", "type": "type", "price": "price",
                "amount": "amount", "reduceOnly": "reduce_only"}  # fmt: skip


def _scalar(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return finite(value)
    return type(value).__name__


def fill_body(
    fill: Mapping[str, Any], source: str, ctx: RecordContext, ts: float, mono: float
) -> dict[str, Any]:
    """A fill of the run's order as the engine learnt it (``source``: stream or rest);
    ``trade_ts`` is the exchange's time of the trade."""
    rec = _common(ctx, "fill", ts, mono)
    rec.update({k: _scalar(fill.get(k)) for k in FILL_FIELDS if fill.get(k) is not None})
    rec["trade_ts"] = _scalar(fill.get("ts"))
    rec["source"] = source
    return rec


def order_body(
    *,
    client_order_id: str,
    symbol: str,
    status: str,
    filled: float,
    order: Mapping[str, Any],
    source: str,
    ctx: RecordContext,
    ts: float,
    mono: float,
) -> dict[str, Any]:
    """A change of one of the run's orders (status, cumulative filled)."""
    rec = _common(ctx, "order", ts, mono)
    rec.update(
        {
            "client_order_id": client_order_id,
            "symbol": symbol,
            "status": status,
            "filled": _scalar(float(filled)),
            "source": source,
        }
    )
    for key, name in ORDER_FIELDS.items():
        if order.get(key) is not None:
            rec[name] = _scalar(order[key])
    return rec


def event_body(event: Event, ctx: RecordContext) -> dict[str, Any] | None:
    """The record for a bus event (None for an event kind the log does not know)."""
    if isinstance(event, ExchangeCall):
        return exchange_body(event, ctx)
    if isinstance(event, Decision):
        return decision_body(event, ctx)
    return None


# Records that say something about orders or the kill switch: fsynced under fsync="orders",
# and followed by a signed checkpoint so that a crash cannot leave them unsigned.
ORDER_CLASSES = frozenset({"order", "cancel", "account"})
ORDER_ACTIONS = frozenset({"deny", "reject", "resolve", "trip", "act", "ban"})


def is_order_related(body: Mapping[str, Any]) -> bool:
    kind = body.get("kind")
    if kind == "exchange":
        return METHOD_CLASS.get(str(body.get("method")), "other") in ORDER_CLASSES
    if kind == "decision":
        return body.get("action") in ORDER_ACTIONS
    return False
