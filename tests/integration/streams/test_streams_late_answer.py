"""A placement answered after its fill: the simulator's ``delayed_response`` fault processes
the order (filled, its ORDER_TRADE_UPDATE and ACCOUNT_UPDATE pushed on the user stream) and
only then holds its REST answer back. The run's stream sees a fill of an order it cannot name
yet (parked, booked once the answer is in) and the ACCOUNT_UPDATE before that booking.

A shared run (``[strategy] share_symbols``) reads its positions from its own fills: the
late-booked fill must reach them at once, not at the next positions event or REST
reconcile (the hedge_shared [user stream] flake). The simulator's state is the truth.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from perpbot.engine.events import OrderEvent
from perpbot.streams.feed import StreamFeed
from tests.integration.hedge_support import plain_ccxt, sides
from tests.integration.risk_support.bot import BTC, BTC_ID, Bot, quiet, write_toml
from tests.integration.streams.support import feed_of, fill_events, sim_trade_ids, started

pytestmark = pytest.mark.timeout(90)
LOT = 0.004
ANSWER_LATE_MS = 1500
PROMPT_S = 3.0  # well inside [exchange] reconcile_interval (15 s here)
LATE_PLACEMENT = {"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": ANSWER_LATE_MS}}


@pytest.fixture
def account(
    sim_factory: Any, monkeypatch: pytest.MonkeyPatch, request: Any
) -> tuple[Any, str, bool]:
    """A quiet market and the bot's account: hedge mode when the test's parameter says so."""
    sim = sim_factory(market=quiet())
    key, secret = sim.create_account()
    hedge = bool(getattr(request, "param", False))
    if hedge:
        plain_ccxt(sim, key, secret).fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    return sim, key, hedge


def run_toml(tmp_path: Path, url: str, *, shared: bool) -> Path:
    return write_toml(
        tmp_path,
        url,
        strategy={"share_symbols": shared},
        exchange={"streams": True, "reconcile_interval": 15, "stream_stale_s": 5.0},
        kill={"deadman": False},
        risk={"symbols": {BTC: {"max_position_notional": 1e6}}, "accept_no_limits": True},
    )


class Seen:
    """What the run's stream applied while the placement's answer was held back."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.positions_events = 0
        apply = StreamFeed._on_positions

        def counted(feed: StreamFeed, positions: list[dict[str, Any]]) -> None:
            apply(feed, positions)
            self.positions_events += 1

        monkeypatch.setattr(StreamFeed, "_on_positions", counted)


async def place_answered_late(sim: Any, bot: Bot, seen: Seen, order: Any) -> dict[str, Any]:
    """Place ``order(ctx)`` with its answer held back; returns the answer. Checks the race
    happened: the fill was parked and an ACCOUNT_UPDATE applied before the answer came."""
    feed = feed_of(bot)
    events_before = seen.positions_events
    sim.set_faults(LATE_PLACEMENT)
    placing = asyncio.create_task(bot.do(order))
    await bot.until(lambda: feed._unmatched and seen.positions_events > events_before)
    assert not placing.done()  # the fill and the position update are in, the answer is not
    answer = await placing
    assert sim.state()["counters"]["delayed_responses"] == 1
    return answer


def leg(bot: Bot, key: str) -> float:
    p = bot.runner.state.legs.get(key) if "|" in key else bot.runner.state.positions.get(key)
    return p.amount if p is not None else 0.0


@pytest.mark.parametrize("account", [False, True], ids=["one-way", "hedge"], indirect=True)
async def test_a_shared_runs_fill_booked_after_its_late_answer_is_in_its_positions_at_once(
    account: tuple[Any, str, bool], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, key, hedge = account
    seen = Seen(monkeypatch)
    bot = await started(run_toml(tmp_path, sim.base_url, shared=True))
    try:
        feed = feed_of(bot)
        reconciles = feed.counters["reconciles"]
        side = {"position_side": "LONG"} if hedge else {}
        answer = await place_answered_late(
            sim, bot, seen, lambda ctx: ctx.market_order(BTC, "buy", LOT, **side)
        )
        answered = asyncio.get_running_loop().time()
        own = f"{BTC}|LONG" if hedge else BTC
        await bot.until(lambda: leg(bot, own) == pytest.approx(LOT), timeout=PROMPT_S)
        took = asyncio.get_running_loop().time() - answered
        truth = sim.state()
        [record] = [o for o in truth["orders"] if o["clientOrderId"] == answer["clientOrderId"]]
        assert record["status"] == "FILLED" and str(record["orderId"]) == answer["id"]
        assert sides(sim, key)["LONG" if hedge else "BOTH"] == pytest.approx(LOT)
        assert [e.fill.trade_id for e in fill_events(bot)] == await sim_trade_ids(sim, bot)
        assert {e.source for e in fill_events(bot)} == {"stream"}
        assert feed.counters["reconciles"] == reconciles  # no REST reconcile helped
        assert not feed._unmatched
        assert took < PROMPT_S
    finally:
        await bot.stop()


async def test_a_runs_fill_ahead_of_its_answer_is_booked_once_and_the_order_closed(
    account: tuple[Any, str, bool], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run of its own (positions from the account): the position comes from the
    ACCOUNT_UPDATE, the fill is booked once when the answer names its order, and the order
    is closed in the ledger and gone from the account view."""
    sim, key, _ = account
    seen = Seen(monkeypatch)
    bot = await started(run_toml(tmp_path, sim.base_url, shared=False))
    try:
        feed = feed_of(bot)
        reconciles = feed.counters["reconciles"]
        answer = await place_answered_late(
            sim, bot, seen, lambda ctx: ctx.market_order(BTC, "buy", LOT)
        )
        await bot.until(lambda: fill_events(bot), timeout=PROMPT_S)
        assert leg(bot, BTC) == pytest.approx(LOT) == sides(sim, key)["BOTH"]
        assert [e.fill.trade_id for e in fill_events(bot)] == await sim_trade_ids(sim, bot)
        tracked = bot.runner.ledger.orders[answer["clientOrderId"]]
        assert (tracked.status, tracked.filled) == ("closed", LOT)
        assert not bot.runner.account.orders
        # the stream told this fill (before the answer): a refresh has nothing to wait for
        started_at = asyncio.get_running_loop().time()
        await bot.do(lambda ctx: ctx.refresh())
        assert asyncio.get_running_loop().time() - started_at < 1.0
        assert not bot.decisions("STREAM_LAGGING")
        assert feed.counters["reconciles"] == reconciles
    finally:
        await bot.stop()


@pytest.mark.parametrize("shared", [False, True], ids=["own account", "shared"])
async def test_a_resting_order_filled_before_its_answer_is_closed_and_off_the_account_view(
    account: tuple[Any, str, bool], tmp_path: Path, shared: bool
) -> None:
    """The answer says NEW (the order's state when it was placed) but the order filled while
    the answer was held back: the run must not keep it open (ledger, account view)."""
    sim, key, _ = account
    taker_key, taker_secret = sim.create_account()
    taker = plain_ccxt(sim, taker_key, taker_secret)
    taker.load_markets()
    bot = await started(run_toml(tmp_path, sim.base_url, shared=shared))
    try:
        feed = feed_of(bot)
        reconciles = feed.counters["reconciles"]
        ask = float(sim.state()["markets"][BTC_ID]["crowd_best_ask"])
        sim.set_faults({"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": 2500}})
        placing = asyncio.create_task(bot.do(lambda ctx: ctx.limit_order(BTC, "sell", LOT, ask)))
        resting = await bot.until(lambda: sim.state()["open_orders"])
        ahead = float(resting[0]["queueAhead"])
        await asyncio.to_thread(taker.create_order, BTC, "market", "buy", round(ahead + LOT, 3))
        await bot.until(lambda: feed._unmatched)
        assert not placing.done()
        answer = await placing
        assert answer["status"] == "open"  # as placed: the fill came after
        [record] = [
            o for o in sim.state()["orders"] if o["clientOrderId"] == answer["clientOrderId"]
        ]
        assert record["status"] == "FILLED"
        tracked = bot.runner.ledger.orders[answer["clientOrderId"]]
        await bot.until(lambda: fill_events(bot), timeout=PROMPT_S)
        assert [e.fill.trade_id for e in fill_events(bot)] == await sim_trade_ids(sim, bot)
        await bot.until(lambda: tracked.status == "closed", timeout=PROMPT_S)
        assert tracked.filled == LOT
        assert not bot.runner.account.orders
        await bot.until(lambda: leg(bot, BTC) == pytest.approx(-LOT), timeout=PROMPT_S)
        assert sides(sim, key)["BOTH"] == pytest.approx(-LOT)
        await asyncio.sleep(1.5)  # past the book evidence's grace (OWED_GRACE_S = 1 s)
        # the stream did tell the fill (before the answer): it is not taken as stalled
        assert not bot.decisions("STREAM_USER_SILENT") and not bot.decisions("STREAM_BACKFILL")
        assert feed.counters["reconciles"] == reconciles
    finally:
        await bot.stop()


async def test_a_cancel_answered_after_its_stream_update_is_applied_once(
    account: tuple[Any, str, bool], tmp_path: Path
) -> None:
    """The stream says CANCELED before the cancel's answer: one change of state, nothing
    open in the ledger or the account view, nothing the run waits for or suspects."""
    sim, _, _ = account
    bot = await started(run_toml(tmp_path, sim.base_url, shared=False))
    try:
        feed = feed_of(bot)
        reconciles = feed.counters["reconciles"]
        bid = float(sim.state()["markets"][BTC_ID]["crowd_best_bid"])
        order = await bot.do(lambda ctx: ctx.limit_order(BTC, "buy", LOT, round(bid * 0.98, 1)))
        cid = order.client_order_id
        tracked = bot.runner.ledger.orders[cid]
        await bot.until(lambda: bot.runner.account.orders)
        sim.set_faults(
            {"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": 1500, "methods": ["DELETE"]}}
        )
        cancelling = asyncio.create_task(bot.do(lambda ctx: ctx.cancel_order(cid, BTC)))
        await bot.until(lambda: tracked.status == "canceled")  # told by the stream
        assert not cancelling.done() and not bot.runner.account.orders
        await cancelling
        [record] = [o for o in sim.state()["orders"] if o["clientOrderId"] == cid]
        assert record["status"] == "CANCELED"
        assert sim.state()["counters"]["delayed_responses"] == 1
        changes = [
            (e.status, e.source)
            for e in bot.fill_log
            if isinstance(e, OrderEvent) and e.client_order_id == cid
        ]
        assert changes == [("canceled", "stream")]  # the late answer changed nothing more
        assert tracked.status == "canceled" and not bot.runner.account.orders
        started_at = asyncio.get_running_loop().time()
        await bot.do(lambda ctx: ctx.refresh())
        assert asyncio.get_running_loop().time() - started_at < 1.0
        assert not bot.decisions("STREAM_LAGGING") and not bot.decisions("STREAM_USER_SILENT")
        assert feed.counters["reconciles"] == reconciles
    finally:
        await bot.stop()
