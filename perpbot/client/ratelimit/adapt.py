"""How budgets change: pushback (429), bans (418), gradual recovery, published rules.

Each function mutates a ``HostState`` inside a store transaction and returns the
``Change``s it made, each with a reason code and a sentence (see ``explain``).
"""

from __future__ import annotations

from typing import Any

from perpbot.client.ratelimit.explain import (
    ban_sentence,
    limit_changed_sentence,
    recover_sentence,
    tighten_sentence,
)
from perpbot.client.ratelimit.rules import Kind, RuleSet
from perpbot.client.ratelimit.state import (
    MIN_FACTOR,
    Change,
    HostState,
    Policy,
    new_bucket,
    orders_name,
    remember,
    weight_name,
)


def pushback(
    st: HostState,
    kinds: set[Kind],
    key_id: str,
    retry_after: float,
    path: str,
    now: float,
    policy: Policy,
) -> list[Change]:
    """A 429: block the host until Retry-After, cut the budgets it was about (once)."""
    until = now + retry_after
    st.blocked_until = max(st.blocked_until, until)
    st.block_path = path
    st.rules_checked_at = 0.0  # re-read the published limits before trading on
    changes: list[Change] = []
    for name, b in st.buckets.items():
        if b.kind not in kinds or (b.kind == "orders" and not name.endswith("/" + key_id)):
            continue
        b.safe = 0  # probe from zero: the exchange just proved our budget wrong
        b.calm_since = now
        if now < b.tighten_until:
            continue  # the same storm: one cut per Retry-After period, whoever saw it
        old = b.cap(policy.safety_margin)
        b.factor = max(MIN_FACTOR, b.factor * policy.tighten_factor)
        b.tighten_until = until
        new = b.cap(policy.safety_margin)
        data = {
            "bucket": name,
            "old": old,
            "new": new,
            "nominal": b.nominal,
            "factor": round(b.factor, 4),
            "retry_after": retry_after,
            "path": path,
        }
        sentence = tighten_sentence(b.kind, b.window_s, old, new, b.nominal, retry_after, path, now)
        changes.append(Change("tighten", "RATE_TIGHTEN_429", sentence, data))
    if not changes:
        changes.append(
            Change(
                "info",
                "RATE_RETRY_AFTER",
                tighten_sentence(None, 0, None, None, None, retry_after, path, now),
                {"retry_after": retry_after, "path": path},
            )
        )
    remember(st, changes[-1], now)
    return changes


def banned(st: HostState, retry_after: float, path: str, now: float) -> Change:
    """A 418: nothing may leave for this host until the ban ends."""
    st.banned_until = max(st.banned_until, now + retry_after)
    st.blocked_until = max(st.blocked_until, st.banned_until)
    st.block_path = path
    st.rules_checked_at = 0.0
    for b in st.buckets.values():
        b.safe, b.calm_since = 0, now
    change = Change(
        "ban",
        "RATE_BANNED_418",
        ban_sentence(retry_after, path, now),
        {"retry_after": retry_after, "path": path, "until": st.banned_until},
    )
    remember(st, change, now)
    return change


def recover(st: HostState, now: float, policy: Policy) -> list[Change]:
    """Grow cut budgets back by ``recover_step`` per calm ``recover_after_s``."""
    changes: list[Change] = []
    for name, b in st.buckets.items():
        if b.factor >= 1.0 or now - b.calm_since < policy.recover_after_s:
            continue
        old = b.cap(policy.safety_margin)
        b.factor = min(1.0, b.factor + policy.recover_step)
        b.calm_since = now
        if b.factor >= 1.0 and b.source == "exchange":
            b.safe = None  # fully recovered on a published budget: trusted again
        new = b.cap(policy.safety_margin)
        data = {"bucket": name, "old": old, "new": new, "nominal": b.nominal}
        data["factor"] = round(b.factor, 4)
        sentence = recover_sentence(b.kind, b.window_s, old, new, b.nominal, policy, now)
        changes.append(Change("recover", "RATE_RECOVER", sentence, data))
    if changes:
        remember(st, changes[-1], now)
    return changes


def apply_rules(st: HostState, rules: RuleSet, now: float, policy: Policy) -> list[Change]:
    """Install published (or configured) limits; explain every limit that changed."""
    changes: list[Change] = []
    if st.rules_source == "exchange" and rules.source == "config":
        return changes  # the exchange's word beats the file's
    st.rules_source = rules.source
    for rule in rules.of("weight"):
        changes += _set_nominal(st, weight_name(rule.window_s), rule, rules.source, now, policy)
    old_orders = {w: (lim, src) for w, lim, src in st.order_rules}
    st.order_rules = [(r.window_s, r.limit, rules.source) for r in rules.of("orders")]
    keys = {n.rsplit("/", 1)[1] for n, b in st.buckets.items() if b.kind == "orders"}
    for rule in rules.of("orders"):
        for key in sorted(keys):
            name = orders_name(key, rule.window_s)
            changes += _set_nominal(st, name, rule, rules.source, now, policy, report=False)
        prev = old_orders.get(rule.window_s, (None, ""))[0]
        if prev != rule.limit:
            changes.append(_limit_change(rule, prev, rules.source, now, "orders"))
    if changes:
        remember(st, changes[-1], now)
    return changes


def _set_nominal(
    st: HostState,
    name: str,
    rule: Any,
    source: str,
    now: float,
    policy: Policy,
    report: bool = True,
) -> list[Change]:
    b = st.buckets.get(name)
    if b is None:
        st.buckets[name] = new_bucket(rule.kind, rule.window_s, rule.limit, source)
        return [_limit_change(rule, None, source, now, name)] if report else []
    prev = b.nominal
    b.nominal, b.source = rule.limit, source
    if source == "exchange" and b.factor >= 1.0:
        b.safe = None
    if prev == rule.limit or not report:
        return []
    return [_limit_change(rule, prev, source, now, name)]


def _limit_change(rule: Any, prev: int | None, source: str, now: float, name: str) -> Change:
    if prev is None:
        action, code = "info", "RATE_RULES_LOADED"
    elif rule.limit < prev:
        action, code = "tighten", "RATE_LIMIT_LOWERED"
    else:
        action, code = "recover", "RATE_LIMIT_RAISED"
    sentence = limit_changed_sentence(rule.kind, rule.window_s, prev, rule.limit, source, now)
    data = {"bucket": name, "old": prev, "new": rule.limit, "nominal": rule.limit}
    data["source"] = source
    return Change(action, code, sentence, data)  # type: ignore[arg-type]
