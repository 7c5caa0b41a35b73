"""The budget maths: pure functions over one host's shared state.

Every perpbot process talking to the same exchange host shares one ``HostState`` (in
SQLite or Redis, see ``stores``), a small JSON document; each store only makes a
read-modify-write atomic and calls these functions inside it, so the maths is written, and
tested, once. Three parts: the state itself, spending (``acquire``, leases, header
corrections), and how budgets change (pushback, bans, recovery, published rules).

Model (Binance's): fixed windows aligned to their length on the server clock. Each
``Bucket`` counts what was spent in its current window: weight per IP (shared by every key
on the host) and order counts per key. A request may leave only when every bucket it draws
on has room under its cap::

    cap = floor(nominal * (1 - safety_margin) * factor)

Of each cap, ``reserve`` (``[limits] reserve_pct``) is kept for requests that reduce risk
(cancels, the dead-man's ``countdownCancelAll``, reduce-only orders, whatever the kill
switch sends: ``Request.risk_reducing``): ordinary requests may bring a bucket only to
``floor(cap * (1 - reserve))`` (reason ``reserve`` when that is what holds them), so a bot
that spends all it may still has room to cancel at once. Leases come out of the ordinary
part only; the reserve is shared by every process like the rest of the state.

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
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal

from perpbot.config import LimitsSection
from perpbot.ratelimit.explain import (
    ban_sentence,
    limit_changed_sentence,
    recover_sentence,
    retry_after_sentence,
    tighten_sentence,
)
from perpbot.ratelimit.rules import Kind, Rule, RuleSet, window_label

# -- the shared state ---------------------------------------------------------------------
MIN_FACTOR = 0.05  # never cut a budget below 5 % of the published limit
WINDOW_EPSILON_S = 0.01  # wake just after a window turns, never just before
PROBE_POLL_S = 0.002  # how often a request waiting for the probe slot looks again
LEASE_DIVISOR = 8  # a process leases at most 1/8 of the room left in a window...
LEASE_MAX_SHARE = 40  # ...and at most 1/40 of the cap
VERSION = 1


@dataclass(frozen=True, slots=True)
class Policy:
    """The ``[limits]`` knobs the maths needs."""

    safety_margin: float = 0.05
    tighten_factor: float = 0.5
    recover_after_s: float = 60.0
    recover_step: float = 0.1
    probe_lease_s: float = 10.0
    reserve: float = 0.10  # share of each cap only risk-reducing requests may use

    @classmethod
    def from_config(cls, limits: LimitsSection, probe_lease_s: float = 10.0) -> Policy:
        return cls(
            safety_margin=limits.safety_margin,
            tighten_factor=limits.tighten_factor,
            recover_after_s=limits.recover_after_s,
            recover_step=limits.recover_step,
            probe_lease_s=probe_lease_s,
            reserve=limits.reserve_pct / 100.0,
        )


@dataclass(slots=True)
class Bucket:
    kind: Kind
    window_s: int
    nominal: int | None = None
    source: str = "none"  # "exchange" | "config" | "none"
    factor: float = 1.0
    start: float = 0.0  # current window start, server clock (s)
    used: int = 0
    safe: int | None = None  # probing: highest usage accepted; None = trusted, no probing
    probe_until: float = 0.0
    calm_since: float = 0.0
    tighten_until: float = 0.0

    def cap(self, margin: float) -> int | None:
        if self.nominal is None:
            return None
        return max(1, math.floor(self.nominal * (1.0 - margin) * self.factor))

    def ordinary_cap(self, margin: float, reserve: float) -> int | None:
        """What requests that do not reduce risk may bring ``used`` to (the cap less the
        reserve)."""
        cap = self.cap(margin)
        if cap is None:
            return None
        return max(1, math.floor(cap * (1.0 - reserve)))

    def roll(self, now: float) -> None:
        start = self.window_start(now)
        if start != self.start:
            self.start, self.used, self.probe_until = start, 0, 0.0

    def window_start(self, now: float) -> float:
        """Where the window ``now`` falls in starts (windows align to their length)."""
        return float(math.floor(now / self.window_s) * self.window_s)

    def ends_at(self) -> float:
        return self.start + self.window_s


@dataclass(slots=True)
class HostState:
    """Everything shared about one exchange host (serialised as one JSON document)."""

    buckets: dict[str, Bucket] = field(default_factory=dict)
    order_rules: list[tuple[int, int, str]] = field(default_factory=list)  # window, limit, src
    blocked_until: float = 0.0
    # a 429 about the order count (Binance -1015) holds requests that count orders only
    orders_blocked_until: float = 0.0
    block_path: str = ""
    banned_until: float = 0.0
    rules_checked_at: float = 0.0
    rules_source: str = "none"
    refresh_until: float = 0.0
    last_change: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["order_rules"] = [list(r) for r in self.order_rules]
        d["v"] = VERSION
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> HostState:
        """The state a document holds. Keys this version does not know (a newer perpbot
        sharing the store wrote them) are left out: the ones it knows mean the same."""
        if not d or d.get("v") != VERSION:
            return cls()
        buckets = {k: Bucket(**_known(Bucket, v)) for k, v in d.get("buckets", {}).items()}
        rules = [tuple(r) for r in d.get("order_rules", [])]
        rest = {k: v for k, v in _known(cls, d).items() if k not in ("buckets", "order_rules")}
        return cls(buckets=buckets, order_rules=rules, **rest)


def _known(kind: type, d: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``d`` that are fields of the dataclass ``kind``."""
    names = {f.name for f in fields(kind)}
    return {k: v for k, v in d.items() if k in names}


@dataclass(frozen=True, slots=True)
class Change:
    """A budget change or a wait, explained (the layer turns it into a Decision)."""

    action: Literal["tighten", "recover", "ban", "info"]
    code: str
    sentence: str
    data: dict[str, Any]


@dataclass(slots=True)
class Admission:
    """The answer to "may this request leave now?" (granted, or how long to wait and why)."""

    wait_s: float = 0.0
    # "" (granted), ban, retry_after, budget, reserve, probe, refresh, too_heavy
    reason: str = ""
    bucket: str | None = None
    used: int = 0
    cap: int | None = None
    starts: dict[str, float] = field(default_factory=dict)
    levels: dict[str, int] = field(default_factory=dict)
    probes: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    leased: dict[str, int] = field(default_factory=dict)

    @property
    def granted(self) -> bool:
        return not self.reason


def weight_name(window_s: int) -> str:
    return f"weight/{window_s}s"


def orders_name(key_id: str, window_s: int) -> str:
    return f"orders/{window_s}s/{key_id}"


def bucket_name(kind: Kind, window_s: int, key_id: str) -> str:
    return weight_name(window_s) if kind == "weight" else orders_name(key_id, window_s)


def ensure_key(st: HostState, key_id: str) -> None:
    """Give ``key_id`` its order-count buckets (from the known order rules)."""
    for window_s, limit, source in st.order_rules:
        name = orders_name(key_id, window_s)
        if name not in st.buckets:
            st.buckets[name] = new_bucket("orders", window_s, limit, source)


def new_bucket(kind: Kind, window_s: int, limit: int, source: str) -> Bucket:
    # published budgets are trusted; configured ones are probed until the exchange accepts
    return Bucket(
        kind=kind,
        window_s=window_s,
        nominal=limit,
        source=source,
        safe=None if source == "exchange" else 0,
    )


def remember(st: HostState, change: Change, now: float) -> None:
    st.last_change = {"code": change.code, "sentence": change.sentence, "at": now}


# -- spending -----------------------------------------------------------------------------
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
    risk_reducing: bool = False,
) -> Admission:
    """Reserve ``charges`` now, or say how long to wait and why (nothing reserved then).

    ``refresh_s`` (None for the rules re-read itself, or when rules cannot be re-read):
    while the rules are due for a re-read, nothing is granted (reason ``refresh``).
    ``lease``: also reserve a small slice of the remaining room of each (trusted) bucket
    for this process to spend without a shared transaction (``Admission.leased``); the slice
    shrinks as the window fills, so what a process leaves unspent at the window's end is
    a few units at most.
    ``risk_reducing``: the request may use the reserve (the whole cap); other requests stop
    at ``Bucket.ordinary_cap`` (reason ``reserve`` when the reserve is what is left).
    """
    changes = recover(st, now, policy)
    if st.banned_until > now:
        return Admission(wait_s=st.banned_until - now, reason="ban", changes=changes)
    if st.blocked_until > now:
        return Admission(wait_s=st.blocked_until - now, reason="retry_after", changes=changes)
    if st.orders_blocked_until > now and any(
        n in st.buckets and st.buckets[n].kind == "orders" and a > 0 for n, a in charges.items()
    ):
        wait = st.orders_blocked_until - now
        return Admission(wait_s=wait, reason="retry_after", changes=changes)
    if refresh_due(st, now, refresh_s):
        wait = min(PROBE_POLL_S * 10, st.refresh_until - now) if st.refresh_until > now else 0.0
        return Admission(wait_s=wait, reason="refresh", changes=changes)
    probes: list[str] = []
    for name, amount in charges.items():
        b = st.buckets.get(name)
        if b is None or amount <= 0:
            continue
        b.roll(now)
        full = b.cap(policy.safety_margin)
        cap = full if risk_reducing else b.ordinary_cap(policy.safety_margin, policy.reserve)
        if cap is not None and b.used + amount > cap:
            assert b.nominal is not None and full is not None
            if amount > b.nominal:  # could never be sent: say so rather than wait forever
                return Admission(
                    reason="too_heavy", bucket=name, used=amount, cap=b.nominal, changes=changes
                )
            # a request bigger than our (cut) cap may go once per window, while there is room
            # under the cap and the exchange's own limit allows it
            if amount <= cap or b.used >= cap or b.used + amount > b.nominal:
                wait = b.ends_at() - now + WINDOW_EPSILON_S
                # held although the whole cap has room: what is left is the reserve
                why = "budget" if risk_reducing or b.used + amount > full else "reserve"
                return Admission(
                    wait_s=wait, reason=why, bucket=name, used=b.used, cap=cap, changes=changes
                )
        if b.safe is not None and b.used + amount > b.safe:
            if b.probe_until > now:
                wait = min(PROBE_POLL_S, b.probe_until - now)
                return Admission(
                    wait_s=wait, reason="probe", bucket=name, used=b.used, cap=cap, changes=changes
                )
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
    return Admission(starts=starts, levels=levels, probes=probes, changes=changes, leased=leased)


def _lease(st: HostState, names: dict[str, float], policy: Policy) -> dict[str, int]:
    out: dict[str, int] = {}
    for name in names:
        b = st.buckets[name]
        cap = b.ordinary_cap(policy.safety_margin, policy.reserve)  # never the reserve
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


# -- how budgets change -------------------------------------------------------------------
def pushback(
    st: HostState,
    kinds: set[Kind],
    key_id: str,
    retry_after: float,
    path: str,
    now: float,
    policy: Policy,
) -> list[Change]:
    """A 429: block the host until Retry-After, cut the budgets it was about (once). A 429
    about the order count alone (``kinds == {"orders"}``) blocks only requests that count
    orders: the exchange goes on answering reads and cancels."""
    until = now + retry_after
    if kinds == {"orders"}:
        st.orders_blocked_until = max(st.orders_blocked_until, until)
    else:
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
        sentence = tighten_sentence(
            kind=b.kind,
            window_s=b.window_s,
            old=old,
            new=new,
            nominal=b.nominal,
            retry_after=retry_after,
            path=path,
            now=now,
        )
        changes.append(
            Change(action="tighten", code="RATE_TIGHTEN_429", sentence=sentence, data=data)
        )
    if not changes:
        changes.append(
            Change(
                action="info",
                code="RATE_RETRY_AFTER",
                sentence=retry_after_sentence(retry_after=retry_after, path=path, now=now),
                data={"retry_after": retry_after, "path": path},
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
        action="ban",
        code="RATE_BANNED_418",
        sentence=ban_sentence(retry_after=retry_after, path=path, now=now),
        data={"retry_after": retry_after, "path": path, "until": st.banned_until},
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
        sentence = recover_sentence(
            kind=b.kind,
            window_s=b.window_s,
            old=old,
            new=new,
            nominal=b.nominal,
            recover_after_s=policy.recover_after_s,
            now=now,
        )
        changes.append(Change(action="recover", code="RATE_RECOVER", sentence=sentence, data=data))
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
    rule: Rule,
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


def _limit_change(rule: Rule, prev: int | None, source: str, now: float, name: str) -> Change:
    if prev is None:
        action, code = "info", "RATE_RULES_LOADED"
    elif rule.limit < prev:
        action, code = "tighten", "RATE_LIMIT_LOWERED"
    else:
        action, code = "recover", "RATE_LIMIT_RAISED"
    sentence = limit_changed_sentence(
        kind=rule.kind, window_s=rule.window_s, old=prev, new=rule.limit, source=source, now=now
    )
    data = {"bucket": name, "old": prev, "new": rule.limit, "nominal": rule.limit}
    data["source"] = source
    return Change(action=action, code=code, sentence=sentence, data=data)  # type: ignore[arg-type]


# -- reading it: the ``rate`` section of ticks.jsonl and `perpbot status` ------------------
def main_weight(st: HostState) -> Bucket | None:
    """The request-weight bucket with the shortest window (the one a status line shows)."""
    weight = [b for b in st.buckets.values() if b.kind == "weight"]
    return min(weight, key=lambda b: b.window_s) if weight else None


def _bucket_status(b: Bucket, now: float, policy: Policy) -> dict[str, Any]:
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
    """The ``rate`` section of ticks.jsonl and `perpbot status`: budget use at a glance."""
    orders = {
        window_label(b.window_s): _bucket_status(b, now, policy)
        for name, b in st.buckets.items()
        if b.kind == "orders" and name.endswith("/" + key_id)
    }
    main = main_weight(st)
    w = _bucket_status(main, now, policy) if main else {}
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
        # orders only (a 429 about the order count, -1015): reads and cancels still go
        "orders_blocked_for_s": round(max(0.0, st.orders_blocked_until - now), 3),
        "last_change": last.get("sentence"),
        "last_change_code": last.get("code"),
        "last_change_at": last.get("at"),
        "store": store,
    }
