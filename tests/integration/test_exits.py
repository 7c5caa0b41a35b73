"""The exit executor's policies against the simulator (ccxt over HTTP, the sim's state as truth)."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from perpbot.client.guarded import GuardedClient
from perpbot.client.pipeline import Pipeline
from perpbot.client.request import OrderSpec
from perpbot.client.transport import Transport, make_exchange
from perpbot.errors import RiskRejected
from perpbot.events import Decision, EventBus
from perpbot.exits import POLICIES, ExitConfig, ExitVenue, run_exit
from perpbot.exits.plan import Urgency, choose, sweep
from perpbot.exits.venue import HeldPosition, client_position, leg_venue
from perpbot.sim.config import MarketConfig, SymbolConfig
from tests.integration.hedge_support import account_of, plain_ccxt, sides

SYM = "BTC/USDT:USDT"
THIN = {"crowd_level_qty": 0.2, "crowd_levels": 10, "crowd_level_step_ticks": 50}
FAST = ExitConfig(pace_s=0.05, passive_steps=2, passive_step_s=0.1, timeout_s=20.0)


async def _client(sim: Any, balance: float, bus: EventBus | None = None) -> GuardedClient:
    """A new simulator account's transport-only client, markets loaded."""
    key, secret = sim.create_account(balance=balance)
    bus = bus or EventBus()
    ex = make_exchange("sim", api_key=key, secret=secret, base_url=sim.base_url)
    client = GuardedClient(
        Pipeline([], Transport(ex, bus), bus), ex, command="test", profile=None, run_id="t"
    )
    await client.load_markets()
    return client


async def _venue(sim: Any) -> tuple[GuardedClient, ExitVenue, list[Decision]]:
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    client = await _client(sim, 1_000_000, bus)

    async def cancel(order: dict[str, Any], symbol: str) -> Any:
        return await client.cancel_order(order.get("id"), symbol)

    return client, ExitVenue(client, client.create_order, cancel, client_position(client)), seen


async def _open(client: GuardedClient, qty: float) -> None:
    side = "buy" if qty > 0 else "sell"
    await client.create_order(OrderSpec(SYM, side, "market", abs(qty)))


def _user_orders(sim: Any) -> list[dict[str, Any]]:
    return [o for o in sim.state().get("orders", []) if o.get("reduceOnly") is False]


@pytest.mark.parametrize("policy", POLICIES)
async def test_each_policy_closes_a_long_with_reduce_only_children(
    sim_factory: Any, policy: str
) -> None:
    sim = sim_factory(
        symbols=[SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0, **THIN)]
    )
    client, venue, seen = await _venue(sim)
    try:
        await _open(client, 0.6)
        res = await run_exit(venue, SYM, policy, FAST)
        assert res is not None and res.left == 0 and res.errors == []
        assert (await venue.position(SYM)).amount == 0  # the exchange says flat
        children = [d for d in seen if d.code == "EXIT_CHILD"]
        assert len(children) == len(res.orders) >= 1
        assert all(o["side"] == "sell" for o in res.orders)
        assert res.filled == pytest.approx(0.6) and res.worst is not None
        if policy == "slices":
            assert len(res.orders) > 1 and all(o["amount"] < 0.6 for o in res.orders)
        if policy == "passive-then-aggressive":
            assert res.orders[0]["post_only"] and res.orders[0]["price"] > res.worst
        if policy == "adaptive":
            assert res.switches and res.switches[0].startswith("adaptive chose")
    finally:
        await client.close()


async def test_a_price_band_refusal_shrinks_and_reprices_and_never_dumps(sim_factory: Any) -> None:
    # PERCENT_PRICE 2 bps below mark: slices allowed to fill 5 bps past the touch price
    # their IOC there, and that price is refused (-4024)
    tight = SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0,
                         percent_price_down="0.9998")  # fmt: skip
    sim = sim_factory(symbols=[tight])
    client, venue, seen = await _venue(sim)
    try:
        await _open(client, 0.4)
        res = await run_exit(venue, SYM, "slices", replace(FAST, through_bps=5.0))
        assert res is not None
        assert any("-4024" in (o["error"] or "") for o in res.orders)
        assert all(o["type"] == "limit" for o in res.orders)  # no market dump
        for prev, nxt in itertools.pairwise(res.orders):
            if prev["error"] and prev["amount"] >= 0.002:  # halving stays above one step
                assert nxt["amount"] < prev["amount"]  # shrunk, never grown or dumped
        assert any(d.code == "EXIT_BAND_SHRINK" for d in seen)
        assert res.left == 0 and (await venue.position(SYM)).amount == 0
    finally:
        await client.close()


async def test_adaptive_goes_to_market_when_liquidation_is_near(sim_factory: Any) -> None:
    sim = sim_factory()
    client = await _client(sim, 80)  # 100x on 0.1 BTC: liquidation 0.9 % away
    venue = ExitVenue(client, client.create_order, client.cancel_order, client_position(client))
    try:
        await client.set_leverage(100, SYM)
        await _open(client, 0.1)
        res = await run_exit(venue, SYM, "adaptive", FAST)
        assert res is not None and res.left == 0
        assert "liquidation" in res.switches[0] and "market" in res.switches[0]
        assert res.orders[0]["type"] == "market"
    finally:
        await client.close()


def test_choose_weighs_impact_against_timing_risk() -> None:
    book = [[60000.0 - 5 * i, 0.2] for i in range(10)]
    calm = Urgency(liq_distance_pct=None, sigma_per_sqrt_s=0.00001)
    wild = Urgency(liq_distance_pct=None, sigma_per_sqrt_s=0.002)
    kw = dict(participation=0.1, band_bps=5.0, pace_s=5.0, permanent_share=0.3)
    assert choose(1.0, book, 60000.0, calm, **kw).policy == "slices"
    assert choose(1.0, book, 60000.0, wild, **kw).policy == "market"
    near = Urgency(liq_distance_pct=0.8, sigma_per_sqrt_s=0.00001)
    c = choose(1.0, book, 60000.0, near, **kw)
    assert (c.policy, c.code) == ("market", "EXIT_LIQ_NEAR") and "0.80% away" in c.sentence
    assert sweep(book, 0.5) == sweep(book, 0.5) and sweep(book, 0.5).worst == 59990.0


def test_the_slices_estimate_follows_the_band_not_this_instants_top_level() -> None:
    # the same depth within the band, but this instant's top level is small: the children
    # meet books still to come (re-quoted, refilled), so the slicing estimate is the same;
    # it was 8.5 against 0.0 (every child assumed to clear a level) and chose market here
    even = [[60000.0 - 5 * i, 0.2] for i in range(10)]
    small_top = [[60000.0, 0.05], [59995.0, 0.35], *even[2:]]
    calm = Urgency(liq_distance_pct=None, sigma_per_sqrt_s=0.00001)
    kw = dict(participation=0.1, band_bps=5.0, pace_s=5.0, permanent_share=0.3)
    a, b = choose(1.0, even, 60000.0, calm, **kw), choose(1.0, small_top, 60000.0, calm, **kw)
    assert a.slices_cost == pytest.approx(b.slices_cost) and a.slices_risk == b.slices_risk
    assert (a.policy, b.policy) == ("slices", "slices")
    assert b.market_cost > a.market_cost  # the market order does trade against this book


def test_the_mark_to_touch_offset_is_common_to_both_ways_out() -> None:
    # a mark above or below the bid is paid (or earned) by either way out alike: the choice
    # and both costs are the same (the mark's side used to count as a cost only for slices)
    book = [[60000.0 - 5 * i, 0.2] for i in range(10)]
    calm = Urgency(liq_distance_pct=None, sigma_per_sqrt_s=0.00003)
    kw = dict(participation=0.1, band_bps=5.0, pace_s=5.0, permanent_share=0.3)
    above, below = (choose(1.0, book, mark, calm, **kw) for mark in (60012.0, 59988.0))
    assert (above.policy, above.market_cost, above.slices_cost) == (
        below.policy, below.market_cost, below.slices_cost,
    )  # fmt: skip
    assert above.market_cost == pytest.approx(10.0)  # 1.0 over levels 0..20 below: 10 each


async def test_adaptive_slices_a_thin_book_and_pays_less_than_the_market_walk(
    sim_factory: Any,
) -> None:
    # a calm thin book that refills within one pace: adaptive slices 5x the top level, and
    # the exchange's own trades for its children average above what one market order would
    # have walked to in the book the exchange showed at arrival
    calm = MarketConfig(volatility=0.000001, jump_rate=0.0, taker_rate=0.0,
                        book_half_life_s=0.05)  # fmt: skip
    for seed in (1, 2, 3):
        sym = SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0, **THIN)
        sim = sim_factory(seed=seed, symbols=[sym], market=calm)
        client, venue, _seen = await _venue(sim)
        try:
            await _open(client, 1.0)
            bids = (await client.fetch_order_book(SYM, 100))["bids"]
            walk = sweep([[float(p), float(q)] for p, q, *_ in bids], 1.0)
            res = await run_exit(venue, SYM, "adaptive", FAST)
            assert res is not None and res.switches[0].startswith("adaptive chose slices")
            state = sim.state()
            ids = {str(o["orderId"]) for o in state["orders"] if o["reduceOnly"]}
            sold = [t for t in state["trades"] if str(t["orderId"]) in ids]
            qty = sum(float(t["qty"]) for t in sold)
            avg = sum(float(t["qty"]) * float(t["price"]) for t in sold) / qty
            assert qty == pytest.approx(1.0) and len(sold) > 1
            assert avg > walk.average, (seed, avg, walk.average)
            assert (await venue.position(SYM)).amount == 0
        finally:
            await client.close()


def _watch(client: GuardedClient, name: str, log: list[tuple[str, str]]) -> None:
    """Log ("start" | "end", ``name``) around each call of the client's ``name``."""
    real = getattr(client, name)

    async def call(*args: Any, **kw: Any) -> Any:
        log.append(("start", name))
        try:
            return await real(*args, **kw)
        finally:
            log.append(("end", name))

    setattr(client, name, call)


@pytest.mark.parametrize("near", [True, False])
async def test_adaptive_reads_what_it_weighs_in_one_round_trip(
    sim_factory: Any, near: bool
) -> None:
    # every wait before the first child is time a market order would already be filling:
    # the liquidation distance comes with run_exit's own position read, then the arrival
    # mark alone (as market's); near, the market order follows at once (no volatility or
    # book read before it); far, the volatility and the book are asked for at once, then
    # the first child
    sim = sim_factory()
    client = await _client(sim, 80 if near else 1_000_000)  # 100x on 0.1 BTC: 0.9 % away
    log: list[tuple[str, str]] = []  # (start | end, method), in the order they happened
    for name in ("fetch_ohlcv", "fetch_positions", "fetch_order_book", "fetch_funding_rate",
                 "create_order"):  # fmt: skip
        _watch(client, name, log)
    venue = ExitVenue(client, client.create_order, client.cancel_order, client_position(client))
    try:
        await client.set_leverage(100, SYM)
        await _open(client, 0.1)
        log.clear()
        res = await run_exit(venue, SYM, "adaptive", FAST)
        assert res is not None and res.left == 0
        first_order = log.index(("start", "create_order"))
        look = log[2:first_order]  # after run_exit's own position read (start, end)
        assert log[:2] == [("start", "fetch_positions"), ("end", "fetch_positions")]
        assert look[:2] == [("start", "fetch_funding_rate"), ("end", "fetch_funding_rate")]
        if near:
            assert "liquidation" in res.switches[0] and res.orders[0]["type"] == "market"
            assert len(look) == 2  # nothing else read before the market order
        else:
            weigh = look[2:]
            assert [e for e, _ in weigh[:2]] == ["start"] * 2
            assert {n for _, n in weigh[:2]} == {"fetch_ohlcv", "fetch_order_book"}
            assert "fetch_positions" not in {n for _, n in look}  # the first read said it
            assert "liquidation" not in res.switches[0]
    finally:
        await client.close()


def _mid(sim: Any, refill: bool = False) -> float:
    """The simulator's mid now (``refill``: the bids' depletion refilled first)."""
    mkt = sim.server.engine.markets["BTCUSDT"]

    def read() -> float:
        if refill:
            mkt.depleted_bids = 0.0
        return float(mkt.mid)

    return sim._call(read)


async def test_slice_children_take_part_of_the_touch_and_leave_no_lasting_impact(
    sim_factory: Any,
) -> None:
    # a thin book whose top level is often smaller than 10% of the band's depth (levels 5
    # USDT apart: ~7 within 5 bps): each child fills at one price, its own limit (the touch,
    # never walking), and takes at most half the level it saw. The simulator's mid keeps
    # 30% of every move of the touch a trade makes (1.5 USDT per level cleared): a child
    # clears a level only when the level was re-drawn smaller between the book read and the
    # order (at most one child in 20 here; children priced 5 bps through with no cap
    # cleared 5-7 levels over 6-9 children on these seeds)
    quiet = MarketConfig(volatility=0.0, jump_rate=0.0, taker_rate=0.0, book_half_life_s=0.2)
    for seed in (1, 2, 3):
        sym = SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0, **THIN)
        sim = sim_factory(seed=seed, symbols=[sym], market=quiet)
        client, venue, _seen = await _venue(sim)
        try:
            await _open(client, 1.0)
            mid = _mid(sim, refill=True)  # the open's own sweep refilled at once
            res = await run_exit(venue, SYM, "slices", replace(FAST, pace_s=0.03))
            assert res is not None and res.left == 0 and (await venue.position(SYM)).amount == 0
            state = sim.state()
            children = [o for o in state["orders"] if o["reduceOnly"]]
            assert len(children) > 5
            for child in children:
                prices = {
                    float(t["price"]) for t in state["trades"] if t["orderId"] == child["orderId"]
                }
                assert len(prices) <= 1, (seed, child, prices)  # never walked
                # at its limit (the touch it saw) or better: a level that refilled between
                # the book read and the order fills the child higher (a loaded machine
                # widens that gap)
                limit = float(child["price"])
                sign = 1.0 if child["side"] == "SELL" else -1.0
                assert all(sign * (p - limit) >= 0 for p in prices), (seed, child, prices)
            cleared = round((mid - _mid(sim)) / (0.3 * 5.0))
            assert 0 <= cleared <= len(children) // 20, (seed, cleared, len(children))
        finally:
            await client.close()


def _round_trips_before_first_order(log: list[tuple[str, str]]) -> int:
    """Sequential round trips before the first order: requests asked together (all started
    before any answered) are one; a request started after an answer begins the next."""
    trips, answered = 0, True
    for event, name in log:
        if event == "start" and name == "create_order":
            return trips
        if event == "start" and answered:
            trips, answered = trips + 1, False
        answered = answered or event == "end"
    raise AssertionError("no order")


@pytest.mark.parametrize("policy", ["market", "adaptive"])
async def test_with_liquidation_near_adaptive_orders_after_as_many_round_trips_as_market(
    sim_factory: Any, policy: str
) -> None:
    # adaptive weighs the volatility, the liquidation distance and the book; it asks for
    # them with the arrival mark, so its market order leaves after the same two round trips
    # as market's (the position, then the arrival mark): never slower with liquidation near
    sim = sim_factory()
    client = await _client(sim, 80)  # 100x on 0.1 BTC: liquidation 0.9 % away
    log: list[tuple[str, str]] = []
    for name in ("fetch_ohlcv", "fetch_positions", "fetch_order_book", "fetch_funding_rate",
                 "create_order"):  # fmt: skip
        _watch(client, name, log)
    venue = ExitVenue(client, client.create_order, client.cancel_order, client_position(client))
    try:
        await client.set_leverage(100, SYM)
        await _open(client, 0.1)
        log.clear()
        res = await run_exit(venue, SYM, policy, FAST)
        assert res is not None and res.left == 0 and res.orders[0]["type"] == "market"
        assert _round_trips_before_first_order(log) == 2, log
        assert (await venue.position(SYM)).amount == 0  # the exchange says flat
    finally:
        await client.close()


def _counters(sim: Any) -> Counter[str]:
    """The simulator's own record of the requests it served, per path, and their weight."""
    counters = sim.state()["counters"]
    return Counter(counters["per_path"]) + Counter({"weight": counters["weight_used"]})


async def _requests_before_first_order(sim: Any, policy: str) -> Counter[str]:
    """What the simulator served for ``policy``'s exit of a long 0.9 % from liquidation
    (100x on 0.1 BTC with 80 USDT) up to its first order: its record when the order is
    about to be sent, less its record when the exit began."""
    client = await _client(sim, 80)
    at_order: list[Counter[str]] = []

    async def place(spec: OrderSpec) -> dict[str, Any]:
        if not at_order:
            at_order.append(_counters(sim))
        return await client.create_order(spec)

    venue = ExitVenue(client, place, client.cancel_order, client_position(client))
    try:
        await client.set_leverage(100, SYM)
        await _open(client, 0.1)
        began = _counters(sim)
        res = await run_exit(venue, SYM, policy, FAST)
        assert res is not None and res.left == 0 and res.orders[0]["type"] == "market"
        return at_order[0] - began
    finally:
        await client.close()


async def test_with_liquidation_near_adaptive_sends_no_more_requests_than_market_first(
    sim_factory: Any,
) -> None:
    # not only as many round trips: as many requests, of the same kinds and weight, before
    # the first order (the simulator's record is the truth). The liquidation distance comes
    # with the position read every exit starts with; adaptive used to ask for the positions
    # a second time, alongside the arrival mark
    sim = sim_factory()
    market = await _requests_before_first_order(sim, "market")
    adaptive = await _requests_before_first_order(sim, "adaptive")
    # market's: the position, the arrival mark (and ccxt's once-per-client leverage brackets
    # with its first positions read)
    assert {path: n for path, n in market.items() if "positionRisk" in path} == {
        "/fapi/v3/positionRisk": 1
    }, market
    assert adaptive == market, (adaptive, market)


async def test_adaptive_reads_the_positions_once_per_child(sim_factory: Any) -> None:
    # the read after each child (the amount left) also carries the liquidation distance the
    # next child is judged by: one positions request per child, plus the exit's first read
    # (the simulator's record is the truth)
    calm = MarketConfig(volatility=0.000001, jump_rate=0.0, taker_rate=0.0,
                        book_half_life_s=0.05)  # fmt: skip
    sym = SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0, **THIN)
    sim = sim_factory(seed=1, symbols=[sym], market=calm)
    client, venue, _seen = await _venue(sim)
    try:
        await _open(client, 1.0)
        began = _counters(sim)
        res = await run_exit(venue, SYM, "adaptive", FAST)
        served = _counters(sim) - began
        assert res is not None and res.switches[0].startswith("adaptive chose slices")
        children = [o for o in sim.state()["orders"] if o["reduceOnly"]]
        assert len(children) == len(res.orders) > 3
        reads = sum(n for path, n in served.items() if "positionRisk" in path)
        assert reads == 1 + len(children), (reads, len(children), served)
    finally:
        await client.close()


async def test_a_child_refused_every_time_is_paced_not_looped(sim_factory: Any) -> None:
    """Every child is refused (a pre-trade check that keeps saying no): the exit records each
    refusal and waits ``pace_s`` before the next, so over its timeout it sends at most one
    attempt and one positions read per ``pace_s`` (the simulator counts the reads), never a
    tight loop spending the rate budget."""
    sim = sim_factory(seed=1)
    client, venue, _seen = await _venue(sim)
    attempts: list[OrderSpec] = []

    async def refuse(spec: OrderSpec) -> dict[str, Any]:
        attempts.append(spec)
        raise RiskRejected("reduce-only has nothing to reduce", code="RISK_TEST")

    try:
        await _open(client, 0.01)
        cfg = ExitConfig(pace_s=0.1, timeout_s=1.0)
        began = _counters(sim)
        res = await run_exit(replace(venue, place=refuse), SYM, "market", cfg)
        served = _counters(sim) - began
        assert res is not None and res.left == pytest.approx(0.01) and res.errors
        most = int(cfg.timeout_s / cfg.pace_s) + 2
        assert 2 <= len(attempts) <= most, len(attempts)  # (a loaded machine sends fewer)
        reads = sum(n for path, n in served.items() if "positionRisk" in path)
        assert reads <= most + 1, served
        assert [o for o in sim.state()["orders"] if o["reduceOnly"]] == []  # none was sent
    finally:
        await client.close()


async def test_a_hedge_mode_side_near_liquidation_exits_at_market_and_leaves_the_other(
    sim_factory: Any,
) -> None:
    # hedge mode: the exit's position read is the side's own row (amount and liquidation
    # price), so adaptive on the LONG leg sees the LONG's liquidation distance, with the
    # simulator's own position rows as the truth, closes it at market and leaves the SHORT
    sim = sim_factory()
    key, secret = sim.create_account(balance=80)
    plain_ccxt(sim, key, secret).fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    bus = EventBus()
    ex = make_exchange("sim", api_key=key, secret=secret, base_url=sim.base_url)
    client = GuardedClient(
        Pipeline([], Transport(ex, bus), bus), ex, command="test", profile=None, run_id="t"
    )
    try:
        await client.load_markets()
        await client.set_leverage(100, SYM)
        for side, qty, leg in (("buy", 0.1, "LONG"), ("sell", 0.002, "SHORT")):
            await client.create_order(OrderSpec(SYM, side, "market", qty, position_side=leg))
        row = next(p for p in account_of(sim, key)["positions"] if p["positionSide"] == "LONG")
        truth = abs(float(row["markPrice"]) - float(row["liquidationPrice"]))
        held = await client_position(client, "LONG")(SYM)
        assert held.amount == pytest.approx(0.1)
        assert held.liq_distance_pct == pytest.approx(truth / float(row["markPrice"]) * 100)
        assert held.liq_distance_pct < 1.0
        plain = ExitVenue(client, client.create_order, client.cancel_order, client_position(client))
        venue = leg_venue(plain, "LONG", client_position(client, "LONG"))
        res = await run_exit(venue, SYM, "adaptive", FAST)
        assert res is not None and res.left == 0
        assert "liquidation" in res.switches[0] and res.orders[0]["type"] == "market"
        assert sides(sim, key) == pytest.approx({"SHORT": -0.002})  # the LONG closed only
    finally:
        await client.close()


async def test_adaptive_switches_to_market_on_the_read_after_the_child_that_saw_liquidation(
    sim_factory: Any,
) -> None:
    # slicing with liquidation ~3 % away; after the second child the price falls to 0.5 %
    # above it: the read after that child (the amount left) carries the new distance, so
    # the very next order is market
    calm = MarketConfig(volatility=0.000001, jump_rate=0.0, taker_rate=0.0,
                        book_half_life_s=0.05)  # fmt: skip
    sym = SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0, **THIN)
    sim = sim_factory(seed=1, symbols=[sym], market=calm)
    client = await _client(sim, 2040)  # 100x on 1 BTC: liquidation ~3 % away
    sent: list[OrderSpec] = []

    async def place(spec: OrderSpec) -> dict[str, Any]:
        order = await client.create_order(spec)
        sent.append(spec)
        if len(sent) == 2:  # the mark falls to 0.5 % above liquidation after the second
            state = sim.state()  # child, by the simulator's own figures
            (row,) = [p for a in state["accounts"] for p in a["positions"]]
            mark = float(state["markets"]["BTCUSDT"]["mark"])
            sim.jump("BTCUSDT", (float(row["liquidationPrice"]) * 1.005 / mark - 1) * 100)
        return order

    reads: list[HeldPosition] = []
    real = client_position(client)

    async def position(symbol: str) -> HeldPosition:
        reads.append(await real(symbol))
        return reads[-1]

    venue = ExitVenue(client, place, client.cancel_order, position)
    try:
        await client.set_leverage(100, SYM)
        await _open(client, 1.0)
        start = await client_position(client)(SYM)
        assert start.liq_distance_pct is not None and 2.0 < start.liq_distance_pct < 4.0
        res = await run_exit(venue, SYM, "adaptive", FAST)
        assert res is not None and res.left == 0
        assert res.switches[0].startswith("adaptive chose slices"), res.switches
        assert [s.type for s in sent[:3]] == ["limit", "limit", "market"], (reads[:4], res.switches)
        seen = [r.liq_distance_pct for r in reads[:3]]  # run_exit's, after child 1, child 2
        assert seen[0] > 1.0 and seen[1] > 1.0 > seen[2], seen
        assert res.switches[1].startswith(
            f"switched from slices to market: liquidation {seen[2]:.2f}% away"
        ), res.switches
        assert res.filled == pytest.approx(1.0)  # our orders closed it, not a liquidation
        assert (await venue.position(SYM)).amount == 0  # the exchange says flat
    finally:
        await client.close()


async def test_a_passive_step_the_book_moved_through_is_rejected_paced_and_escalates(
    sim_factory: Any,
) -> None:
    """The passive step of passive-then-aggressive meets -5022 (its post-only price is at
    or through the other side by the time it arrives: here every one is re-priced to the
    best bid, as a book that moved would have it). Each step's refusal is recorded with the
    code, nothing rests and nothing is resent (the simulator records no order for it), the
    next step waits ``pace_s``, then the exit escalates to slices and ends flat."""
    sim = sim_factory(seed=1)
    client, venue, seen = await _venue(sim)

    async def crossing(spec: OrderSpec) -> dict[str, Any]:
        if spec.post_only:
            book = await client.fetch_order_book(SYM, 5)
            spec = replace(spec, price=book["bids"][0][0])  # a sell at the best bid: crosses
            sent.append(time.monotonic())
        return await client.create_order(spec)

    sent: list[float] = []
    cfg = replace(FAST, passive_steps=3, pace_s=0.3)
    try:
        await _open(client, 0.05)
        res = await run_exit(replace(venue, place=crossing), SYM, "passive-then-aggressive", cfg)
        assert res is not None and res.left == 0 and (await venue.position(SYM)).amount == 0
        passive = [o for o in res.orders if o["post_only"]]
        assert len(passive) == len(sent) == 3  # one attempt per step, none resent
        assert all("-5022" in (o["error"] or "") for o in passive)
        assert all(b - a >= cfg.pace_s * 0.9 for a, b in itertools.pairwise(sent))  # paced
        assert [d.code for d in seen if d.code == "EXIT_ESCALATE"] == ["EXIT_ESCALATE"]
        gtx = [o for o in sim.state()["orders"] if o["timeInForce"] == "GTX"]
        assert len(gtx) == 3 and all(not o["recorded"] and o["status"] == "EXPIRED" for o in gtx)
        assert [o for o in res.orders if not o["post_only"]]  # the slices closed it
    finally:
        await client.close()
