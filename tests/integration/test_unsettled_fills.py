"""An order is judged against a position that includes the fills earlier answers reported.

A market order's answer says it filled before the run's position view knows it: on streams
the ACCOUNT_UPDATE follows on the user stream (late when that stream lags), on polling the
next reconcile reads it. Judged against the old view, a second market buy passed
``max_position_notional`` (the first one's fill counted nowhere: 0.02 BTC held against a
0.01 BTC limit), and a take-profit placed right after its entry was refused as having
nothing to reduce (a CI failure of 2026-12-07). The run now settles its view first
(perpbot.engine.unsettled). The simulator's positions and orders are the truth.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perpbot.engine.strategy import OrderRejected
from tests.integration.hedge_support import sides
from tests.integration.risk_support.bot import BTC, Bot, write_toml
from tests.integration.streams.support import control, feed_of, started, ws_counters

QTY = 0.01  # 600 USDT at the quiet market's 60 000: two of them pass the limit, one does not
RISK = {"symbols": {BTC: {"max_position_notional": 1000.0}}, "accept_no_limits": True}
STREAM_LAG_MS = 500.0  # the user stream's events reach the bot this late (< REFRESH_WAIT_S)
POSITIONS = "/fapi/v3/positionRisk"


def _toml(sim: Any, tmp_path: Path, **exchange: Any) -> Path:
    return write_toml(
        tmp_path,
        sim.base_url,
        kill={"deadman": False},
        risk=RISK,
        exchange={"reconcile_interval": 600, **exchange},
        retry={"max_attempts": 2, "base_delay_s": 0.05, "deadline_s": 2.0},
    )


def _lag_user_stream(sim: Any, delay_ms: float) -> None:
    control(sim, "/__sim/faults", {"streams": {"delay_ms": delay_ms, "scope": "user"}})


def _two_buys(ctx: Any) -> list[Any]:
    """Two market buys in one callback, the second right after the first one's answer."""
    out: list[Any] = [ctx.market_order(BTC, "buy", QTY)]
    try:
        out.append(ctx.market_order(BTC, "buy", QTY))
    except OrderRejected as exc:
        out.append(exc.code)
    return out


def _entry_and_take_profit(ctx: Any) -> list[Any]:
    entry = ctx.market_order(BTC, "buy", QTY)
    price = ctx.round_price(BTC, ctx.mark(BTC) * 1.02)
    return [entry, ctx.reduce_only_order(BTC, "sell", QTY, price)]


def _status(sim: Any, client_id: str) -> str:
    return str(next(o for o in sim.state()["orders"] if o["clientOrderId"] == client_id)["status"])


@pytest.mark.parametrize("streams", [True, False], ids=["streams, user stream late", "polling"])
async def test_a_second_buy_counts_the_first_ones_fill_against_the_position_limit(
    account: tuple[Any, str], tmp_path: Path, streams: bool
) -> None:
    sim, key = account
    async with Bot(_toml(sim, tmp_path, streams=streams)) as bot:
        _lag_user_stream(sim, STREAM_LAG_MS)
        first, second = await bot.do(_two_buys)
        assert first.filled == QTY
        assert second == "RISK_MAX_POSITION_NOTIONAL"
        assert sides(sim, key) == {"BOTH": QTY}  # the exchange holds the first buy only
        (refused,) = bot.decisions("RISK_MAX_POSITION_NOTIONAL")
        assert "max_position_notional" in refused.sentence
        # on streams the stream delivered the fill in time: no REST read was needed
        assert not bot.decisions("STREAM_LAGGING")
    control(sim, "/__sim/faults", {})


async def test_a_position_update_that_comes_before_its_order_update_settles_the_fill(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """The ACCOUNT_UPDATE and the ORDER_TRADE_UPDATE of a fill are separate messages; the
    user stream may deliver the position first (the simulator's reorder fault swaps them).
    The position already includes the fill (the exchange made it at or after the fill), so
    the next order is judged on it at once: no wait for a position update that came
    already, no REST read (STREAM_LAGGING), and the limit holds."""
    sim, key = account
    async with Bot(_toml(sim, tmp_path)) as bot:
        control(sim, "/__sim/faults", {"streams": {"reorder_rate": 1.0, "scope": "user"}})
        first, second = await bot.do(_two_buys)
        assert first.filled == QTY and second == "RISK_MAX_POSITION_NOTIONAL"
        assert sides(sim, key) == {"BOTH": QTY}
        assert ws_counters(sim)["events_reordered"] > 0
        assert not bot.decisions("STREAM_LAGGING")
    control(sim, "/__sim/faults", {})


async def test_a_take_profit_right_after_its_entry_is_accepted(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    async with Bot(_toml(sim, tmp_path)) as bot:
        _lag_user_stream(sim, STREAM_LAG_MS)
        entry, tp = await bot.do(_entry_and_take_profit)
        assert entry.filled == QTY
        assert _status(sim, tp.client_order_id) == "NEW"  # resting at the exchange
        assert sides(sim, key) == {"BOTH": QTY}
        assert not bot.decisions("RISK_REDUCE_ONLY_NO_POSITION")
    control(sim, "/__sim/faults", {})


async def test_a_user_stream_that_does_not_catch_up_is_read_over_rest(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """The stream holds the fill longer than the run waits for it (REFRESH_WAIT_S): the
    position is read over REST instead, said, and the limit still holds."""
    sim, key = account
    async with Bot(_toml(sim, tmp_path)) as bot:
        _lag_user_stream(sim, 6000.0)
        first, second = await bot.do(_two_buys)
        assert first.filled == QTY and second == "RISK_MAX_POSITION_NOTIONAL"
        assert sides(sim, key) == {"BOTH": QTY}
        (lagging,) = bot.decisions("STREAM_LAGGING")
        assert "reads REST instead" in lagging.sentence
    control(sim, "/__sim/faults", {})


async def test_a_position_that_cannot_be_read_refuses_the_next_order_until_it_can(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """The stream holds the fill and REST answers the positions read with 503: the next
    order cannot be judged against the position, so it is refused, said, and never sent.
    Once the exchange answers again, the next order settles the view and goes on."""
    sim, key = account
    bot = await started(_toml(sim, tmp_path))  # (past the start's own reads)
    try:
        control(
            sim,
            "/__sim/faults",
            {
                "streams": {"delay_ms": 10_000.0, "scope": "user"},
                "errors": {"rate": 1.0, "statuses": [503], "paths": [POSITIONS]},
            },
        )
        sent_before = len(sim.state()["orders"])
        first, second = await bot.do(_two_buys, timeout=30)
        assert first.filled == QTY and second == "RISK_POSITION_UNSETTLED"
        assert len(sim.state()["orders"]) == sent_before + 1  # the second never left
        (refused,) = bot.decisions("RISK_POSITION_UNSETTLED")
        assert "the position could not be read" in refused.sentence
        assert "ExchangeNotAvailable" in refused.sentence
        control(sim, "/__sim/faults", {})
        close = await bot.do(lambda ctx: ctx.reduce_only_order(BTC, "sell", QTY), timeout=30)
        assert close.filled == QTY
        assert sides(sim, key) == {}
    finally:
        control(sim, "/__sim/faults", {})
        await bot.stop()


async def test_fills_the_user_stream_never_delivered_do_not_hold_up_later_refreshes(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """The user stream loses every event for a while: a market buy's fill (its answer told
    the run) and a resting bid's fill (the market fell through it: no answer told it). REST
    finds both. Once the stream is back, ``ctx.refresh()`` must not wait for the stream to
    deliver fills it will never send: it waits for what answers reported and REST has not
    settled, nothing more. (It once waited for every fill the stream had not delivered: 2 s
    and a REST read on every refresh for the rest of the run.)"""
    sim, key = account
    half = QTY / 2  # three of them stay within the limit
    bot = await started(_toml(sim, tmp_path))
    try:
        feed = feed_of(bot)
        control(sim, "/__sim/faults", {"streams": {"drop_rate": 1.0, "scope": "user"}})
        price = await bot.do(lambda ctx: ctx.round_price(BTC, ctx.mark(BTC) * 0.99))
        await bot.do(lambda ctx: ctx.limit_order(BTC, "buy", half, price))
        sim.jump("BTCUSDT", -1.5)  # the crowd's asks fall through the bid: it fills
        # the book shows the bid gone and the user stream says nothing: the run takes the
        # stream as stalled and closes it; the buy's answered fill never streams either
        await bot.until(lambda: bot.decisions("STREAM_USER_SILENT"))
        buy = await bot.do(lambda ctx: ctx.market_order(BTC, "buy", half))
        assert buy.filled == half
        await bot.do(lambda ctx: ctx.refresh(), timeout=30)  # REST: the stream is down
        control(sim, "/__sim/faults", {})
        # reconnected and backfilled, the stream the run closed for its silence counts as
        # back once it delivers again, which a third buy's events do
        await bot.until(lambda: bot.decisions("STREAM_BACKFILL"))
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", half))
        await bot.until(lambda: feed.user_stream_up and feed.counters["stream_fills"] == 1)
        assert sides(sim, key) == {"BOTH": 3 * half}
        lagging, reconciles = bot.decisions("STREAM_LAGGING"), feed.counters["reconciles"]
        for _ in range(3):
            await bot.do(lambda ctx: ctx.refresh())
        assert bot.decisions("STREAM_LAGGING") == lagging  # no wait for the stream
        assert feed.counters["reconciles"] == reconciles  # and no REST read
        assert bot.runner.positions[BTC].amount == pytest.approx(3 * half)
    finally:
        control(sim, "/__sim/faults", {})
        await bot.stop()
