"""A conditional order the run placed is the run's own when it fires: its fill is booked.

The run holds a position and a stop on the exchange (a STOP_MARKET placed through ctx, or
the [protect] keeper's closePosition stop); the simulator's price moves through it and its
Algo Service places the triggered (child) order in the matching engine. That child order's
fills are the run's: in its ledger (fills, fees, realized PnL), its journal, summary and
status, exactly once whichever of the user stream and a REST reconcile sees them first, and
never said as a fill the run did not place (FILL_FOREIGN). The simulator's trades of the
child order (named by the algo order's ``actualOrderId``) and its positions are the truth.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.risk_support.bot import BTC, BTC_ID, Bot
from tests.integration.streams.support import started as started_bot
from tests.integration.test_unplaced_fills import MODES, bot_toml, sim_position

pytestmark = pytest.mark.timeout(60)
LATE_MS = 1500  # the user stream's delivery held back this long
PROTECT = {"enabled": True, "stop_pct": 1.0, "check_interval_s": 0.1}


async def started(path: Path) -> Bot:
    """A started bot whose ledger's events (the strategy's order and fill events) are kept."""
    bot = await started_bot(path)
    bot.ledger_log = []  # type: ignore[attr-defined]
    bot.runner.ledger.listeners.append(bot.ledger_log.append)  # type: ignore[attr-defined]
    return bot


def fired(sim: Any, key: str, client_algo_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The algo order ``client_algo_id`` of ``key`` and its child order's trades (the truth)."""
    algo = next(
        a
        for a in sim.state()["algo_orders"]
        if a["account"] == key and a["clientAlgoId"] == client_algo_id
    )
    child = int(algo["actualOrderId"] or 0)
    assert child, f"the algo order did not fire: {algo}"
    trades = [t for t in sim.state()["trades"] if t["orderId"] == child and t["account"] == key]
    assert trades, "the triggered order made no trade"
    return algo, trades


async def booked_once(
    bot: Bot, sim: Any, key: str, truth: list[dict[str, Any]], source: str
) -> None:
    """The run's ledger holds each trade of ``truth`` once, as the simulator made it (from
    ``source``); REST reconciles listing them again add nothing; no FILL_* said them."""
    ids = sorted(str(t["id"]) for t in truth)
    ledger = bot.runner.ledger

    def mine() -> list[str]:
        return sorted(f.trade_id for f in ledger.fills if f.trade_id in ids)

    await bot.until(lambda: mine() == ids, timeout=10)
    reconciler = bot.runner.reconciler
    assert reconciler is not None
    await reconciler.reconcile(market=False)
    await reconciler.reconcile(market=False)
    assert mine() == ids  # once each
    by_id = {f.trade_id: f for f in ledger.fills}
    for t in truth:
        f = by_id[str(t["id"])]
        assert f.order_id == str(t["orderId"])
        assert f.price == pytest.approx(float(t["price"]))
        assert f.amount == pytest.approx(float(t["qty"]))
        assert f.fee == pytest.approx(float(t["commission"]))
        assert f.realized_pnl == pytest.approx(float(t["realizedPnl"]))
    mine_all = {str(t["id"]) for t in sim.state()["trades"] if t["account"] == key}
    assert {f.trade_id for f in ledger.fills} == mine_all  # every trade of the account
    assert ledger.fees == pytest.approx(
        sum(float(t["commission"]) for t in sim.state()["trades"] if t["account"] == key)
    )
    for code in ("FILL_FOREIGN", "FILL_LIQUIDATION", "FILL_ADL"):
        assert bot.decisions(code) == []
    journalled = [json.loads(x) for x in (bot.runner.journal.dir / "fills.jsonl").open()]
    journalled = [j for j in journalled if str(j["trade_id"]) in ids]
    assert sorted(str(j["trade_id"]) for j in journalled) == ids
    assert {j["source"] for j in journalled} == {source}
    # the strategy's order events (from the ledger): the triggered order, once, then filled
    told = [e for e in bot.ledger_log if e["type"] == "order"]  # type: ignore[attr-defined]
    (triggered,) = [e for e in told if e["code"] == "ORDER_TRIGGERED"]
    cid = triggered["client_order_id"]
    assert triggered["order"]["id"] == str(truth[0]["orderId"])
    assert [e["status"] for e in told if e["client_order_id"] == cid] == ["accepted", "filled"]
    assert ledger.orders[cid].status == "closed"
    await bot.until(lambda: not getattr(bot.runner.positions.get(BTC), "amount", 0.0))
    assert sim_position(sim, key) == 0.0


async def summary_is_the_simulators(bot: Bot, sim: Any, key: str) -> None:
    summary = await bot.stop()
    trades = [t for t in sim.state()["trades"] if t["account"] == key]
    assert summary["fills"] == len(trades)
    assert summary["fees"] == pytest.approx(sum(float(t["commission"]) for t in trades))
    assert summary["realized_pnl"] == pytest.approx(sum(float(t["realizedPnl"]) for t in trades))


async def long_with_a_stop(bot: Any) -> dict[str, Any]:
    """The bot buys 0.01 BTC and stands a stop for it 1 % below the mid; the stop's order."""
    await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.01))
    mid = await bot.do(lambda ctx: ctx.mid(BTC))
    stop: dict[str, Any] = await bot.do(
        lambda ctx: ctx.stop_market_order(BTC, "sell", mid * 0.99, 0.01)
    )
    return stop


@MODES
async def test_a_triggered_stop_placed_through_ctx_is_booked_once(
    account: tuple[Any, str], tmp_path: Path, streams: bool
) -> None:
    sim, key = account
    bot = await started(bot_toml(tmp_path, sim.base_url, streams))
    try:
        stop = await long_with_a_stop(bot)
        sim.jump(BTC_ID, -3.0)
        _, truth = fired(sim, key, stop["clientOrderId"])
        await booked_once(bot, sim, key, truth, "stream" if streams else "rest")
        (f,) = [f for f in bot.runner.ledger.fills if f.trade_id == str(truth[0]["id"])]
        assert f.client_order_id == stop["clientOrderId"] and f.side == "sell"
        assert f.realized_pnl < 0  # the stop closed the long at a loss
    finally:
        await summary_is_the_simulators(bot, sim, key)


@MODES
async def test_the_protect_keepers_close_position_stop_is_booked_once(
    account: tuple[Any, str], tmp_path: Path, streams: bool
) -> None:
    sim, key = account
    bot = await started(bot_toml(tmp_path, sim.base_url, streams, protect=PROTECT))
    try:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.01))

        def standing() -> list[dict[str, Any]]:
            return [
                a
                for a in sim.state()["algo_orders"]
                if a["account"] == key and a["algoStatus"] == "NEW"
            ]

        (stop,) = await bot.until(lambda: standing(), timeout=10)
        assert stop["closePosition"] is True
        sim.jump(BTC_ID, -3.0)
        _, truth = fired(sim, key, stop["clientAlgoId"])
        await booked_once(bot, sim, key, truth, "stream" if streams else "rest")
        (f,) = [f for f in bot.runner.ledger.fills if f.trade_id == str(truth[0]["id"])]
        assert f.amount == pytest.approx(0.01) and f.intent == "protect"
    finally:
        await summary_is_the_simulators(bot, sim, key)


async def test_rest_first_then_the_late_stream_books_the_triggered_stop_once(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """On streams, the user stream held back: the REST reconcile meets the triggered order's
    fill first and books it; the stream's late update of it adds nothing."""
    sim, key = account
    bot = await started(bot_toml(tmp_path, sim.base_url, True))
    try:
        stop = await long_with_a_stop(bot)
        sim.set_faults({"streams": {"scope": "user", "delay_ms": LATE_MS}})
        sim.jump(BTC_ID, -3.0)
        _, truth = fired(sim, key, stop["clientOrderId"])
        reconciler = bot.runner.reconciler
        assert reconciler is not None
        await reconciler.reconcile(market=False)
        ids = [str(t["id"]) for t in truth]
        assert [f.trade_id for f in bot.runner.ledger.fills if f.trade_id in ids] == ids
        await asyncio.sleep(LATE_MS / 1000.0 + 0.5)  # the stream's late update has come
        sim.set_faults({})
        await booked_once(bot, sim, key, truth, "rest")
    finally:
        await summary_is_the_simulators(bot, sim, key)
