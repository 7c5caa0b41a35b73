"""The budget maths: pure functions over one host's shared state.

Every perpbot process talking to the same exchange host shares one ``HostState`` (in
SQLite or Redis, see the stores); each store only makes a read-modify-write atomic and calls
these functions inside it, so the maths is written, and tested, once.

Model (Binance's): fixed windows aligned to their length on the server clock. Each
``Bucket`` counts what was spent in its current window: weight per IP (shared by every key
on the host) and order counts per key. A request may leave only when every bucket it draws
on has room under its cap::

    cap = floor(nominal * (1 - safety_margin) * factor)

``nominal`` is the published (or configured) limit; ``factor`` is 1 until the exchange
pushes back. A 429 cuts ``factor`` multiplicatively (once per Retry-After period, however
many processes saw it), blocks the host until Retry-After has passed, and puts the bucket
in *probing*: above the highest usage the exchange is known to have accepted (``safe``,
learnt from the usage headers and shared like everything else), only one request may be in
flight at a time, so a wrong budget costs one 429 rather than a burst of requests that all
land inside the Retry-After window (which earns a 418 ban). Budgets the exchange publishes
are trusted (no probing) until it pushes back, and again once fully recovered; budgets
from ``[limits]`` are always probed above what the exchange has accepted. After
``recover_after_s`` without pushback ``factor`` grows back by ``recover_step`` per period.
Response headers correct ``used`` upwards: the exchange is the truth.

Each change returns a ``Change`` with a reason code and a sentence; the layer publishes it.

Rules are re-read at the start of every ``refresh_s``-aligned period (and at once after a
429 or 418): until the first client of the period has re-read them, nothing else may leave,
so a limit the exchange lowered is followed from the first request of the next period.
"""

from __future__ import annotations

import math

from perpbot.client.ratelimit.adapt import apply_rules, banned, pushback, recover
from perpbot.client.ratelimit.state import (
    LEASE_DIVISOR,
    LEASE_MAX_SHARE,
    PROBE_POLL_S,
    WINDOW_EPSILON_S,
    Bucket,
    Change,
    Grant,
    HostState,
    Policy,
    bucket_name,
    ensure_key,
    orders_name,
    weight_name,
)

__all__ = [
    "PROBE_POLL_S",
    "WINDOW_EPSILON_S",
    "Bucket",
    "Change",
    "Grant",
    "HostState",
    "Policy",
    "accepted_level",
    "acquire",
    "apply_rules",
    "banned",
    "bucket_name",
    "charges_for",
    "ensure_key",
    "observe",
    "orders_name",
    "pushback",
    "recover",
    "refresh_due",
    "release_probes",
    "weight_name",
]


def refresh_due(st: HostState, now: float, refresh_s: float | None) -> bool:
    """True until someone has re-read the rules in the current ``refresh_s`` period."""
    if refresh_s is None:
        return False
    return st.rules_checked_at < math.floor(now / refresh_s) * refresh_s


def charges_for(weight: int, orders: int, st: HostState, key_id: str) -> dict[str, int]:
    """The buckets one HTTP request draws on, and how much."""
    out: dict[str, int] = {}
    for name, b in st.buckets.items():
        if b.kind == "weight" and weight:
            out[name] = weight
        elif b.kind == "orders" and orders and name.endswith("/" + key_id):
            out[name] = orders
    return out


def acquire(
    st: HostState,
    charges: dict[str, int],
    now: float,
    policy: Policy,
    refresh_s: float | None = None,
    lease: bool = False,
) -> Grant:
    """Reserve ``charges`` now, or say how long to wait and why (nothing reserved then).

    ``refresh_s`` (None for the rules re-read itself, or when rules cannot be re-read):
    while the rules are due for a re-read, nothing is granted (reason ``refresh``).
    ``lease``: also reserve a small slice of the remaining room of each (trusted) bucket
    for this process to spend without a shared transaction (``Grant.leased``); the slice
    shrinks as the window fills, so what a process leaves unspent at the window's end is
    a few units at most.
    """
    changes = recover(st, now, policy)
    if st.banned_until > now:
        return Grant(st.banned_until - now, "ban", changes=changes)
    if st.blocked_until > now:
        return Grant(st.blocked_until - now, "retry_after", changes=changes)
    if refresh_due(st, now, refresh_s):
        wait = min(PROBE_POLL_S * 10, st.refresh_until - now) if st.refresh_until > now else 0.0
        return Grant(wait, "refresh", changes=changes)
    probes: list[str] = []
    for name, amount in charges.items():
        b = st.buckets.get(name)
        if b is None or amount <= 0:
            continue
        b.roll(now)
        cap = b.cap(policy.safety_margin)
        if cap is not None and b.used + amount > cap:
            assert b.nominal is not None
            if amount > b.nominal:  # could never be sent: say so rather than wait forever
                return Grant(0.0, "too_heavy", name, amount, b.nominal, changes=changes)
            # a request bigger than our (cut) cap may go once per window, while there is room
            # under the cap and the exchange's own limit allows it
            if amount <= cap or b.used >= cap or b.used + amount > b.nominal:
                wait = b.ends_at() - now + WINDOW_EPSILON_S
                return Grant(wait, "budget", name, b.used, cap, changes=changes)
        if b.safe is not None and b.used + amount > b.safe:
            if b.probe_until > now:
                wait = min(PROBE_POLL_S, b.probe_until - now)
                return Grant(wait, "probe", name, b.used, cap, changes=changes)
            probes.append(name)
    starts: dict[str, float] = {}
    levels: dict[str, int] = {}
    for name, amount in charges.items():
        b = st.buckets.get(name)
        if b is None or amount <= 0:
            continue
        b.used += amount
        starts[name], levels[name] = b.start, b.used
    for name in probes:
        st.buckets[name].probe_until = now + policy.probe_lease_s
    leased = _lease(st, starts, policy) if lease else {}
    return Grant(starts=starts, levels=levels, probes=probes, changes=changes, leased=leased)


def _lease(st: HostState, names: dict[str, float], policy: Policy) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in names:
        b = st.buckets[name]
        cap = b.cap(policy.safety_margin)
        if b.safe is not None or cap is None:
            continue  # probing buckets are spent one request at a time, in the open
        take = min((cap - b.used) // LEASE_DIVISOR, cap // LEASE_MAX_SHARE)
        if take > 0:
            b.used += take
            out[name] = take
    return out


def observe(
    st: HostState,
    name: str,
    used: int,
    sent_start: float | None,
    accepted: bool,
    now: float,
) -> bool:
    """Correct a bucket from a usage header; True when the shared estimate went up.

    Only a header about the window the request was sent in is applied (a response that
    lands after the window turned says nothing about the new one), and only upwards: our
    count includes requests still in flight, which the exchange has not seen yet.
    """
    b = st.buckets.get(name)
    if b is None:
        return False
    b.roll(now)
    if sent_start is not None and b.start != sent_start:
        return False
    raised = used > b.used
    b.used = max(b.used, used)
    if accepted and b.safe is not None:
        b.safe = max(b.safe, used)
    return raised


def accepted_level(st: HostState, name: str, level: int, sent_start: float, now: float) -> None:
    """No usage header (an exchange that sends none): our own level at send was accepted."""
    b = st.buckets.get(name)
    if b is not None and b.safe is not None:
        b.roll(now)
        if b.start == sent_start:
            b.safe = max(b.safe, level)


def release_probes(st: HostState, names: list[str]) -> None:
    for name in names:
        b = st.buckets.get(name)
        if b is not None:
            b.probe_until = 0.0
