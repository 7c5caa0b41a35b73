"""A resting reduce-only take-profit and the ways out of its position (xLydianSoftware/Qubx#386).

Binance counts open reduce-only orders against the position (-4118, the simulator does
too: tests/sim/test_reduce_only_held.py), and a run's own risk gate counts its reduce-only
orders the same way (RISK_REDUCE_ONLY_EXCEEDS). With a full-size reduce-only take-profit
resting, an exit's reduce-only children were refused until its timeout. Now ``ctx.exit``
cancels the run's own resting reduce-only orders on the closing side (said:
EXIT_REDUCE_ONLY_FREED) and closes; one it may not cancel (not the run's) is named with
how to free it (EXIT_REDUCE_ONLY_BLOCKED). An algo take-profit (outside the book) holds
nothing and stays. The simulator's positions and orders are the truth.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from perpbot.engine.strategy import OrderRejected
from tests.integration.hedge_support import plain_ccxt, sides
from tests.integration.risk_support.bot import BTC, Bot, write_toml

QTY = 0.01
RISK = {"symbols": {BTC: {"max_position_notional": 1e6}}, "accept_no_limits": True}


def _toml(sim: Any, tmp_path: Path) -> Path:
    return write_toml(tmp_path, sim.base_url, kill={"deadman": False}, risk=RISK)


def _order(sim: Any, cid: str) -> dict[str, Any]:
    return next(o for o in sim.state()["orders"] if o["clientOrderId"] == cid)


def _tp_price(ctx: Any) -> float:
    return ctx.round_price(BTC, ctx.mark(BTC) * 1.02)


async def test_ctx_exit_cancels_the_runs_own_take_profit_that_holds_the_position(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    async with Bot(_toml(sim, tmp_path)) as bot:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", QTY))
        tp = await bot.do(lambda ctx: ctx.reduce_only_order(BTC, "sell", QTY, _tp_price(ctx)))
        assert _order(sim, tp["clientOrderId"])["status"] == "NEW"
        # the take-profit holds the whole position: a reduce-only close is refused (the
        # run's own gate, before the exchange would answer -4118)
        with pytest.raises(OrderRejected) as refused:
            await bot.do(lambda ctx: ctx.reduce_only_order(BTC, "sell", QTY))
        assert refused.value.code == "RISK_REDUCE_ONLY_EXCEEDS"

        res = await bot.do(
            lambda ctx: ctx.exit(BTC, "market", timeout_s=10.0, pace_s=0.2), timeout=30
        )
        assert res is not None and res["left"] == 0.0 and res["errors"] == [], res
        assert sides(sim, key) == {}  # flat at the exchange
        assert _order(sim, tp["clientOrderId"])["status"] == "CANCELED"
        assert [o["client_order_id"] for o in res["freed"]] == [tp["clientOrderId"]]
        (freed,) = bot.decisions("EXIT_REDUCE_ONLY_FREED")
        assert tp["clientOrderId"] in freed.sentence and "-4118" in freed.sentence
        logged = [e for e in bot.journal() if e.get("code") == "EXIT_REDUCE_ONLY_FREED"]
        assert len(logged) == 1 and tp["clientOrderId"] in logged[0]["sentence"]
        # one child refused by the gate before the cancel, none after; none reached the
        # exchange refused (no -4118 there: every exit child it recorded filled)
        assert len(bot.decisions("RISK_REDUCE_ONLY_EXCEEDS")) == 2  # the probe's, the exit's
        children = [o for o in sim.state()["orders"] if o["reduceOnly"] and o["type"] == "MARKET"]
        assert children and all(o["status"] == "FILLED" for o in children)


async def test_ctx_exit_leaves_an_algo_take_profit_standing_and_closes(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """A closePosition take-profit on the Algo API waits outside the book: it holds no room
    (neither at the exchange nor in the gate), so the exit cancels nothing and closes."""
    sim, key = account
    async with Bot(_toml(sim, tmp_path)) as bot:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", QTY))
        await bot.do(
            lambda ctx: ctx.take_profit_order(BTC, "sell", _tp_price(ctx), close_position=True)
        )
        res = await bot.do(
            lambda ctx: ctx.exit(BTC, "market", timeout_s=10.0, pace_s=0.2), timeout=30
        )
        assert res is not None and res["left"] == 0.0 and res["freed"] == [], res
        assert sides(sim, key) == {}
        (algo,) = sim.state()["algo_orders"]
        assert algo["algoStatus"] == "NEW" and algo["closePosition"] is True
        assert not bot.decisions("EXIT_REDUCE_ONLY_FREED")
        assert not bot.decisions("RISK_REDUCE_ONLY_EXCEEDS")


async def test_ctx_exit_names_a_take_profit_it_may_not_cancel_and_how_to_free_it(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """A reduce-only take-profit placed by hand (not the run's): the exit cancels only its
    own, so it cannot close; it says once what blocks it and how to free it, and its result
    names it. Cancelling it by hand lets the next exit through."""
    sim, key = account
    hand = plain_ccxt(sim, key, os.environ["PERPBOT_SIM_API_SECRET"])
    async with Bot(_toml(sim, tmp_path)) as bot:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", QTY))
        mark = float(hand.fetch_ticker(BTC)["last"])
        tp = hand.create_order(BTC, "limit", "sell", QTY, round(mark * 1.02, 1),
                               {"reduceOnly": True, "clientOrderId": "by-hand-tp"})  # fmt: skip
        res = await bot.do(
            lambda ctx: ctx.exit(BTC, "market", timeout_s=1.5, pace_s=0.3), timeout=30
        )
        assert res is not None and res["left"] == pytest.approx(QTY), res
        assert sides(sim, key) == pytest.approx({"BOTH": QTY})
        assert _order(sim, "by-hand-tp")["status"] == "NEW"  # not the run's: untouched
        (blocked,) = bot.decisions("EXIT_REDUCE_ONLY_BLOCKED")
        assert "perpbot flatten --cancel-orders --symbol BTC/USDT:USDT" in blocked.sentence
        assert "not this run's" in blocked.sentence
        assert blocked.sentence in res["errors"]
        hand.cancel_order(tp["id"], BTC)
        res = await bot.do(
            lambda ctx: ctx.exit(BTC, "market", timeout_s=10.0, pace_s=0.2), timeout=30
        )
        assert res is not None and res["left"] == 0.0, res
        assert sides(sim, key) == {}
