"""The ``rate`` section of ticks.jsonl and `perpbot status`: budget use at a glance."""

from __future__ import annotations

from typing import Any

from perpbot.client.ratelimit.rules import window_label
from perpbot.client.ratelimit.state import Bucket, HostState, Policy


def _bucket(b: Bucket, now: float, policy: Policy) -> dict[str, Any]:
    current = b.start <= now < b.start + b.window_s
    return {
        "window": window_label(b.window_s),
        "used": b.used if current else 0,
        "limit": b.cap(policy.safety_margin),
        "nominal": b.nominal,
        "factor": round(b.factor, 4),
        "source": b.source,
        "probing_above": b.safe,
    }


def snapshot(st: HostState, now: float, policy: Policy, key_id: str, store: str) -> dict[str, Any]:
    weight = [b for b in st.buckets.values() if b.kind == "weight"]
    orders = {
        window_label(b.window_s): _bucket(b, now, policy)
        for name, b in st.buckets.items()
        if b.kind == "orders" and name.endswith("/" + key_id)
    }
    main = min(weight, key=lambda b: b.window_s) if weight else None
    w = _bucket(main, now, policy) if main else {}
    last = st.last_change or {}
    return {
        "weight_used": w.get("used"),
        "weight_limit": w.get("limit"),
        "weight_nominal": w.get("nominal"),
        "weight_window": w.get("window"),
        "factor": w.get("factor", 1.0),
        "orders": orders,
        "source": st.rules_source,
        "blocked_for_s": round(max(0.0, st.blocked_until - now), 3),
        "banned_for_s": round(max(0.0, st.banned_until - now), 3),
        "last_change": last.get("sentence"),
        "last_change_code": last.get("code"),
        "last_change_at": last.get("at"),
        "store": store,
    }
