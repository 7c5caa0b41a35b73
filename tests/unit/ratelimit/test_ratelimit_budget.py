"""The budget maths: caps, windows, header correction, tightening, recovery, probing, bans."""

from __future__ import annotations

import pytest

from perpbot.ratelimit import budget
from perpbot.ratelimit.budget import Bucket, HostState, Policy
from perpbot.ratelimit.rules import Rule, RuleSet

POLICY = Policy(
    safety_margin=0.05,
    tighten_factor=0.5,
    recover_after_s=30.0,
    recover_step=0.25,
    probe_lease_s=5.0,
    reserve=0.0,  # the cap maths alone (the reserve: test_ratelimit_reserve.py)
)
W = budget.weight_name(60)
KEY = "k1"
T0 = 1_700_000_040.0  # a minute boundary


def published(weight: int = 2400, short: int = 300, long: int = 1200) -> RuleSet:
    return RuleSet(
        (Rule("weight", 60, weight), Rule("orders", 10, short), Rule("orders", 60, long)),
        "exchange",
    )


def state(rules: RuleSet | None = None, probing: bool = False) -> HostState:
    """A host with published budgets (trusted unless ``probing``)."""
    st = HostState()
    budget.apply_rules(st, rules or published(), T0, POLICY)
    budget.ensure_key(st, KEY)
    assert all(b.safe is None for b in st.buckets.values())
    if probing:
        for b in st.buckets.values():
            b.safe = 0
    st.rules_checked_at = T0
    return st


def take(st: HostState, weight: int, orders: int, now: float) -> budget.Admission:
    return budget.acquire(st, budget.charges_for(weight, orders, st, KEY), now, POLICY)


def test_cap_applies_margin_and_factor() -> None:
    b = Bucket("weight", 60, nominal=2400)
    assert b.cap(0.05) == 2280
    b.factor = 0.5
    assert b.cap(0.05) == 1140
    assert Bucket("weight", 60).cap(0.05) is None  # unknown limit: no cap


def test_fills_to_cap_then_waits_until_the_window_turns() -> None:
    st = state()
    for _ in range(228):
        assert take(st, 10, 0, T0 + 1).wait_s == 0
    assert st.buckets[W].used == 2280
    held = take(st, 1, 0, T0 + 20)
    assert held.reason == "budget" and held.bucket == W
    assert held.wait_s == pytest.approx(40.0 + budget.WINDOW_EPSILON_S)
    assert st.buckets[W].used == 2280  # nothing reserved while waiting
    assert take(st, 1, 0, T0 + 60.02).wait_s == 0
    assert st.buckets[W].used == 1  # a new window


def test_orders_draw_on_both_order_windows_and_not_on_weight() -> None:
    st = state(published(short=3))
    for _ in range(2):  # cap = floor(3 * 0.95) = 2
        assert take(st, 0, 1, T0 + 1).wait_s == 0
    held = take(st, 0, 1, T0 + 2)
    assert held.reason == "budget" and held.bucket == budget.orders_name(KEY, 10)
    assert st.buckets[W].used == 0
    assert st.buckets[budget.orders_name(KEY, 60)].used == 2
    # another key on the same host has its own order budget but shares the weight
    budget.ensure_key(st, "k2")
    g = budget.acquire(st, budget.charges_for(1, 1, st, "k2"), T0 + 2, POLICY)
    assert g.wait_s == 0


def test_a_request_bigger_than_the_cap_goes_if_the_exchange_limit_allows() -> None:
    st = state(published(weight=20))  # cap 19
    assert take(st, 20, 0, T0 + 1).granted  # within the exchange's own 20
    assert take(st, 1, 0, T0 + 2).reason == "budget"
    heavy = take(st, 40, 0, T0 + 61)  # more than the exchange's whole limit: never
    assert heavy.reason == "too_heavy" and heavy.used == 40 and heavy.cap == 20
    st.buckets[W].factor = 0.25  # cut to 4: a 10 may still go in a quiet window
    assert take(st, 10, 0, T0 + 62).granted
    assert take(st, 10, 0, T0 + 62).reason == "budget"


def test_headers_correct_upwards_only_and_only_for_the_window_sent_in() -> None:
    st = state()
    g = take(st, 5, 0, T0 + 1)
    start = g.starts[W]
    assert budget.observe(st, W, 900, start, True, T0 + 1.1)  # another client spent weight
    assert st.buckets[W].used == 900
    assert not budget.observe(st, W, 3, start, True, T0 + 1.2)  # in-flight: keep ours
    assert st.buckets[W].used == 900
    # a response that lands after the window turned says nothing about the new window
    assert not budget.observe(st, W, 2000, start, True, T0 + 61)
    assert st.buckets[W].used == 0


def test_429_blocks_the_host_cuts_once_per_storm_and_explains() -> None:
    st = state()
    changes = budget.pushback(st, {"weight"}, KEY, 12.0, "POST /fapi/v1/order", T0 + 4, POLICY)
    assert [c.code for c in changes] == ["RATE_TIGHTEN_429"]
    c = changes[0]
    assert c.action == "tighten"
    assert c.data["old"] == 2280 and c.data["new"] == 1140 and c.data["nominal"] == 2400
    assert c.data["retry_after"] == 12.0 and c.data["path"] == "POST /fapi/v1/order"
    assert "weight budget cut 2280 -> 1140 per 1m" in c.sentence
    assert "429 with Retry-After 12 s on POST /fapi/v1/order" in c.sentence
    held = take(st, 1, 0, T0 + 10)
    assert held.reason == "retry_after" and held.wait_s == pytest.approx(6.0)
    # a second 429 inside the same Retry-After period (another process saw it) cuts nothing
    again = budget.pushback(st, {"weight"}, KEY, 12.0, "GET /fapi/v1/depth", T0 + 5, POLICY)
    assert all(c.action != "tighten" for c in again)
    assert st.buckets[W].factor == 0.5
    # a later storm cuts again, multiplicatively, never below the floor
    budget.pushback(st, {"weight"}, KEY, 1.0, "GET /x", T0 + 20, POLICY)
    assert st.buckets[W].factor == 0.25
    assert st.rules_checked_at == 0.0  # limits are re-read after pushback


def test_order_count_429_cuts_only_order_budgets_of_that_key() -> None:
    st = state()
    changes = budget.pushback(st, {"orders"}, KEY, 3.0, "POST /fapi/v1/order", T0, POLICY)
    assert {c.data["bucket"] for c in changes} == {
        budget.orders_name(KEY, 10),
        budget.orders_name(KEY, 60),
    }
    assert st.buckets[W].factor == 1.0
    assert "order-count budget cut" in changes[0].sentence


def test_order_count_429_holds_orders_only_until_its_retry_after() -> None:
    """Binance answers reads and cancels during a -1015's Retry-After: only requests that
    count orders wait for it (another key's too: the simulator refuses the IP's orders)."""
    st = state()
    budget.pushback(st, {"orders"}, KEY, 3.0, "POST /fapi/v1/order", T0, POLICY)
    assert st.blocked_until == 0.0 and st.orders_blocked_until == T0 + 3.0
    st.rules_checked_at = T0 + 0.5  # (the rules re-read after the 429)
    assert take(st, 1, 0, T0 + 1).granted  # a read, a cancel
    held = take(st, 1, 1, T0 + 1)  # an order
    assert held.reason == "retry_after" and held.wait_s == pytest.approx(2.0)
    budget.ensure_key(st, "k2")
    other = budget.charges_for(1, 1, st, "k2")
    assert budget.acquire(st, other, T0 + 1, POLICY).reason == "retry_after"
    assert take(st, 1, 1, T0 + 3.01).granted  # (a probe: the budget was proved wrong)


def test_recovers_gradually_after_calm_periods() -> None:
    st = state()
    budget.pushback(st, {"weight"}, KEY, 1.0, "GET /x", T0, POLICY)
    assert budget.recover(st, T0 + 29, POLICY) == []  # not calm long enough
    steps = []
    now = T0
    while st.buckets[W].factor < 1.0:
        now += 30
        changes = budget.recover(st, now, POLICY)
        steps.append(round(st.buckets[W].factor, 2))
        assert changes and changes[0].action == "recover" and changes[0].code == "RATE_RECOVER"
    assert steps == [0.75, 1.0]
    assert st.buckets[W].safe is None  # trusted again once fully recovered
    assert "raised 1710 -> 2280 per 1m" in st.last_change["sentence"]  # type: ignore[index]


def test_after_pushback_one_request_at_a_time_above_the_accepted_level() -> None:
    st = state()
    budget.pushback(st, {"weight"}, KEY, 1.0, "GET /x", T0 + 1, POLICY)
    now = T0 + 2
    first = take(st, 1, 0, now)
    assert first.wait_s == 0 and first.probes == [W]
    second = take(st, 1, 0, now)
    assert second.reason == "probe" and second.wait_s <= budget.PROBE_POLL_S
    budget.observe(st, W, 1, first.starts[W], True, now)
    budget.release_probes(st, first.probes)
    assert take(st, 1, 0, now).probes == [W]  # the next probe
    # in the next window, usage up to the accepted level flows concurrently again
    budget.release_probes(st, [W])
    st.buckets[W].safe = 100
    nxt = T0 + 60.5
    grants = [take(st, 10, 0, nxt) for _ in range(10)]
    assert all(g.wait_s == 0 and not g.probes for g in grants)
    assert take(st, 10, 0, nxt).probes == [W]


def test_unconfirmed_usage_is_probed_and_headers_confirm_it() -> None:
    st = state(probing=True)
    first = take(st, 2, 0, T0 + 1)
    assert first.probes == [W]  # nothing accepted yet: one at a time
    assert take(st, 2, 0, T0 + 1).reason == "probe"
    budget.observe(st, W, 2, first.starts[W], True, T0 + 1)
    budget.release_probes(st, first.probes)
    assert st.buckets[W].safe == 2
    # without usage headers, the level we reserved at is what the exchange accepted
    second = take(st, 3, 0, T0 + 1)
    budget.accepted_level(st, W, second.levels[W], second.starts[W], T0 + 1)
    assert st.buckets[W].safe == 5
    # a rejected response confirms nothing
    budget.observe(st, W, 50, second.starts[W], False, T0 + 1)
    assert st.buckets[W].safe == 5


def test_rules_must_be_reread_each_period_before_anything_else_leaves() -> None:
    st = state()
    assert take(st, 1, 0, T0 + 59).granted
    nxt = T0 + 60.1
    g = budget.acquire(st, budget.charges_for(1, 0, st, KEY), nxt, POLICY, refresh_s=60)
    assert g.reason == "refresh" and g.wait_s == 0
    st.refresh_until = nxt + 5  # someone is re-reading them: wait for their answer
    g = budget.acquire(st, budget.charges_for(1, 0, st, KEY), nxt, POLICY, refresh_s=60)
    assert g.reason == "refresh" and 0 < g.wait_s <= 0.02
    st.rules_checked_at, st.refresh_until = nxt, 0.0
    assert budget.acquire(st, budget.charges_for(1, 0, st, KEY), nxt, POLICY, 60).granted
    assert budget.refresh_due(st, T0 + 120, 60) and not budget.refresh_due(st, T0 + 119, 60)
    assert not budget.refresh_due(st, T0 + 500, None)


def test_a_probe_lease_expires_when_its_response_never_comes() -> None:
    st = state()
    budget.pushback(st, {"weight"}, KEY, 1.0, "GET /x", T0 + 1, POLICY)
    assert take(st, 1, 0, T0 + 2).probes == [W]
    assert take(st, 1, 0, T0 + 3).reason == "probe"
    assert take(st, 1, 0, T0 + 2 + POLICY.probe_lease_s + 0.01).wait_s == 0


def test_ban_stops_everything_until_it_ends() -> None:
    st = state()
    change = budget.banned(st, 120.0, "GET /fapi/v1/depth", T0)
    assert change.action == "ban" and change.code == "RATE_BANNED_418"
    assert "banned this IP (418) for 120 s" in change.sentence
    held = take(st, 1, 0, T0 + 100)
    assert held.reason == "ban" and held.wait_s == pytest.approx(20.0)
    assert take(st, 1, 0, T0 + 121).wait_s == 0


def test_published_limit_changes_are_followed_and_explained() -> None:
    st = state()
    changes = budget.apply_rules(st, published(weight=1200), T0 + 5, POLICY)
    assert [(c.action, c.code) for c in changes] == [("tighten", "RATE_LIMIT_LOWERED")]
    assert "lowered the weight limit 2400 -> 1200 per 1m" in changes[0].sentence
    assert st.buckets[W].cap(POLICY.safety_margin) == 1140
    raised = budget.apply_rules(st, published(weight=1200, short=600), T0 + 6, POLICY)
    assert [(c.action, c.code) for c in raised] == [("recover", "RATE_LIMIT_RAISED")]
    assert st.buckets[budget.orders_name(KEY, 10)].nominal == 600
    assert budget.apply_rules(st, published(weight=1200, short=600), T0 + 7, POLICY) == []


def test_config_rules_never_override_published_ones_and_are_probed() -> None:
    st = state()
    config = RuleSet((Rule("weight", 60, 6000),), "config")
    assert budget.apply_rules(st, config, T0, POLICY) == []
    assert st.buckets[W].nominal == 2400
    fresh = HostState()
    budget.apply_rules(fresh, config, T0, POLICY)
    assert fresh.buckets[W].source == "config" and fresh.buckets[W].safe == 0


def test_state_round_trips_through_json() -> None:
    import json

    st = state()
    take(st, 7, 1, T0 + 1)
    budget.pushback(st, {"weight"}, KEY, 2.0, "GET /x", T0 + 1, POLICY)
    again = HostState.from_dict(json.loads(json.dumps(st.to_dict())))
    assert again == st
    assert HostState.from_dict({"v": 999}) == HostState()  # unknown versions start afresh


def test_state_written_by_a_newer_perpbot_is_read_without_its_new_keys() -> None:
    """Bots of two versions may share a store during an upgrade: what the older one does
    not know (a newer field, at the top or in a bucket) is left out, the rest is read."""
    st = state()
    take(st, 7, 1, T0 + 1)
    doc = st.to_dict()
    doc["a_newer_field"] = 1.0
    for bucket in doc["buckets"].values():
        bucket["a_newer_bucket_field"] = "x"
    assert HostState.from_dict(doc) == st
