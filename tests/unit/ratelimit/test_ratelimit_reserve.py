"""The reserve: ordinary requests stop short of the cap, risk-reducing ones may use it all."""

from __future__ import annotations

from perpbot.client.request import OrderSpec, Request, reducing_risk
from perpbot.config import LimitsSection
from perpbot.kill.deadman import COUNTDOWN_METHOD, REFRESH_FRACTION
from perpbot.ratelimit import budget
from perpbot.ratelimit.budget import HostState, Policy
from perpbot.ratelimit.explain import wait_sentence
from perpbot.ratelimit.reserve import (
    DEADMAN_METHOD,
    DEADMAN_REFRESH_FRACTION,
    deadman_warning,
    reserve_status,
)
from perpbot.ratelimit.rules import Rule, RuleSet

POLICY = Policy(safety_margin=0.05, reserve=0.10)
W = budget.weight_name(60)
KEY = "k1"
T0 = 1_700_000_040.0  # a minute boundary


def state() -> HostState:
    st = HostState()
    rules = RuleSet((Rule("weight", 60, 2400), Rule("orders", 10, 300)), "exchange")
    budget.apply_rules(st, rules, T0, POLICY)
    budget.ensure_key(st, KEY)
    st.rules_checked_at = T0
    return st


def take(st: HostState, weight: int, now: float, *, reducing: bool = False) -> budget.Admission:
    charges = budget.charges_for(weight, 0, st, KEY)
    return budget.acquire(st, charges, now, POLICY, risk_reducing=reducing)


def test_ordinary_requests_stop_at_the_cap_less_the_reserve() -> None:
    st = state()
    assert st.buckets[W].ordinary_cap(0.05, 0.10) == 2052  # floor(2280 * 0.9)
    for _ in range(205):
        assert take(st, 10, T0 + 1).granted
    assert take(st, 2, T0 + 2).granted  # 2052: the ordinary ceiling exactly
    held = take(st, 1, T0 + 20)
    assert held.reason == "reserve"  # the cap has room, but it is the reserve's
    assert held.cap == 2052 and held.used == 2052
    assert abs(held.wait_s - (40 + budget.WINDOW_EPSILON_S)) < 1e-6
    assert st.buckets[W].used == 2052  # a held request reserves nothing


def test_risk_reducing_requests_use_the_reserve_up_to_the_cap_and_no_further() -> None:
    st = state()
    st.buckets[W].start, st.buckets[W].used = T0, 2052
    for _ in range(228):
        assert take(st, 1, T0 + 3, reducing=True).granted
    assert st.buckets[W].used == 2280
    held = take(st, 1, T0 + 4, reducing=True)
    assert held.reason == "budget" and held.cap == 2280  # the exchange's limit still holds
    assert take(st, 1, T0 + 61).granted  # a new window: ordinary requests again


def test_leases_never_take_the_reserve() -> None:
    st = state()
    st.buckets[W].start, st.buckets[W].used = T0, 2000
    charges = budget.charges_for(1, 0, st, KEY)
    got = budget.acquire(st, charges, T0 + 1, POLICY, lease=True)
    assert got.granted
    assert st.buckets[W].used + 0 <= 2052
    assert got.leased.get(W, 0) == (2052 - 2001) // budget.LEASE_DIVISOR
    st.buckets[W].used = 2052
    got = budget.acquire(st, charges, T0 + 2, POLICY, lease=True, risk_reducing=True)
    assert got.granted and W not in got.leased  # nothing ordinary left to lease


def test_no_reserve_when_configured_off() -> None:
    policy = Policy.from_config(LimitsSection(reserve_pct=0))
    st = state()
    st.buckets[W].start, st.buckets[W].used = T0, 2279
    charges = budget.charges_for(1, 0, st, KEY)
    assert budget.acquire(st, charges, T0 + 1, policy).granted
    assert Policy.from_config(LimitsSection()).reserve == 0.10


def test_what_counts_as_risk_reducing() -> None:
    assert Request("cancel_order", ("1", "BTC/USDT:USDT")).risk_reducing
    assert Request("fapiprivate_post_countdowncancelall", ({"symbol": "BTCUSDT"},)).risk_reducing
    exit_order = OrderSpec("BTC/USDT:USDT", "sell", "market", 0.01, reduce_only=True)
    assert Request.for_order(exit_order).risk_reducing
    entry = OrderSpec("BTC/USDT:USDT", "buy", "limit", 0.01, 100.0)
    assert not Request.for_order(entry).risk_reducing
    algo = {"symbol": "BTCUSDT", "closePosition": "true"}
    assert Request("fapiprivate_post_algoorder", (algo,)).risk_reducing
    assert not Request("fetch_open_orders", ("BTC/USDT:USDT",)).risk_reducing
    with reducing_risk():  # the kill switch's lookups
        lookup = Request("fetch_open_orders", ("BTC/USDT:USDT",))
    assert lookup.risk_reducing
    assert not Request("fetch_open_orders").risk_reducing  # only inside the block
    resync = Request("load_time_difference").serving(lookup)
    assert resync.risk_reducing


def test_the_wait_sentence_names_the_reserve() -> None:
    sentence = wait_sentence(
        reason="reserve", what="GET /fapi/v1/openOrders", wait_s=12.0, bucket=W, used=2052,
        cap=2052, now=T0,
    )  # fmt: skip
    assert "2052/2052 per 1m used by ordinary requests" in sentence
    assert "kept for cancels, reduce-only orders and the kill switch" in sentence
    assert "reserve_pct" in sentence


def test_the_reserve_and_what_the_window_used_of_it() -> None:
    st = state()
    b = st.buckets[W]
    assert reserve_status(b, T0 + 1, POLICY) == {
        "pct": 10.0, "weight": 228, "used": 0, "window": "1m", "window_s": 60,
    }  # fmt: skip
    for _ in range(205):
        assert take(st, 10, T0 + 1).granted
    assert take(st, 30, T0 + 2, reducing=True).granted  # 2080: 28 above the ordinary 2052
    assert reserve_status(b, T0 + 3, POLICY)["used"] == 28
    assert reserve_status(b, T0 + 61, POLICY)["used"] == 0  # a new window


def _reserve(pct: float) -> dict[str, object]:
    st = state()
    return reserve_status(st.buckets[W], T0, Policy(safety_margin=0.05, reserve=pct / 100))


def test_the_start_warns_when_the_deadman_would_take_over_half_the_reserve() -> None:
    # 3 symbols every 20 s: 90 weight per minute, under half of 228: quiet
    quiet = deadman_warning(symbols=3, refresh_s=20, countdown_s=60, reserve=_reserve(10), cap=2280)
    assert quiet is None
    # 2 symbols every 10 s: 120 of 228 (53%), and what to set instead
    said = deadman_warning(symbols=2, refresh_s=10, countdown_s=30, reserve=_reserve(10), cap=2280)
    assert said is not None and "\n" not in said
    assert "on 2 symbol(s) (10 weight each, every 10 s: 120 weight per 1m)" in said
    assert "would take 53% of the rate reserve (228 of the 2280 weight per 1m" in said
    assert "reserve_pct = 10" in said and "a kill's cancels could wait" in said
    # the fixes: each one brings the refreshes back under half the reserve
    assert "set [limits] reserve_pct = 11 or [kill] deadman_refresh_s = 11" in said
    assert (
        deadman_warning(symbols=2, refresh_s=10, countdown_s=30, reserve=_reserve(11), cap=2280)
        is None
    )
    assert (
        deadman_warning(symbols=2, refresh_s=11, countdown_s=30, reserve=_reserve(10), cap=2280)
        is None
    )
    # no fix within reach: 40 symbols every second
    far = deadman_warning(symbols=40, refresh_s=1, countdown_s=3, reserve=_reserve(10), cap=2280)
    assert far is not None and far.endswith("set fewer symbols per bot")
    # no reserve at all
    none = deadman_warning(symbols=1, refresh_s=20, countdown_s=60, reserve=_reserve(0), cap=2280)
    assert none is not None and "reserve_pct = 0" in none


def test_the_start_warning_counts_the_dead_mans_own_method_and_cadence() -> None:
    """The rate limiter imports no other concern, so reserve.py names the dead-man's ccxt
    method and default cadence itself: they must be the dead-man's."""
    assert DEADMAN_METHOD == COUNTDOWN_METHOD
    assert DEADMAN_REFRESH_FRACTION == REFRESH_FRACTION
