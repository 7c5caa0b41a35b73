"""The [protect] keeper in a real run: the stop follows the position as it changes."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from perpbot.engine.strategy import OrderRejected
from tests.integration.kill_strategies.support import position_of
from tests.integration.protect.coverage import stop_gaps
from tests.integration.protect.test_conditional_orders import BTC, BTC_ID, algos, started

PROTECT = {"enabled": True, "stop_pct": 2.0, "take_profit_pct": 4.0, "check_interval_s": 0.1}


def standing(sim: Any, key: str) -> list[dict[str, Any]]:
    return [a for a in algos(sim, key).values() if a["algoStatus"] == "NEW"]


async def protected_bot(tmp_path: Path, sim: Any, key: str) -> tuple[Any, Any, str]:
    """A bot whose keeper trips the kill switch on failure, once its first stop and
    take-profit stand: (bot, its ctx, the client id of that first stop)."""
    bot = await started(tmp_path, sim, key, protect={**PROTECT, "on_failure": "kill"})
    ctx = bot.runner.ctx
    assert ctx is not None
    first = await bot.until(lambda: len(standing(sim, key)) == 2 and standing(sim, key))
    (old,) = [a["clientAlgoId"] for a in first if a["orderType"] == "STOP_MARKET"]
    return bot, ctx, old


async def test_the_stop_is_replaced_on_a_size_change_and_removed_when_flat(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    bot = await started(tmp_path, sim, key, protect=PROTECT)
    ctx = bot.runner.ctx
    assert ctx is not None
    first = await bot.until(lambda: len(standing(sim, key)) == 2 and standing(sim, key))
    kinds = sorted(a["orderType"] for a in first)
    assert kinds == ["STOP_MARKET", "TAKE_PROFIT_MARKET"]
    assert all(a["closePosition"] is True and a["side"] == "SELL" for a in first)

    await asyncio.to_thread(ctx.market_order, BTC, "buy", 0.01)  # the position doubles
    old = {a["clientAlgoId"] for a in first}
    second = await bot.until(
        lambda: (
            len(standing(sim, key)) == 2
            and not old & {a["clientAlgoId"] for a in standing(sim, key)}
            and standing(sim, key)
        )
    )
    every = algos(sim, key)
    # replaced through a temporary reduce-only stop (Binance refuses a second closePosition
    # stop beside the first, -4130): the position was never without a standing stop
    new_stop = next(a for a in second if a["orderType"] == "STOP_MARKET")
    old_stop = next(every[c] for c in old if every[c]["orderType"] == "STOP_MARKET")
    (bridge,) = [a for a in every.values() if a["reduceOnly"]]
    assert old_stop["algoStatus"] == "CANCELED" and bridge["algoStatus"] == "CANCELED"
    assert bridge["createTime"] <= old_stop["updateTime"]
    assert new_stop["createTime"] <= bridge["updateTime"]
    assert stop_gaps(list(every.values())) == []
    entry = next(p for p in sim.state()["accounts"] if p["api_key"] == key)["positions"][0]
    assert abs(float(new_stop["triggerPrice"]) - float(entry["entryPrice"]) * 0.98) < 1.0

    await asyncio.to_thread(ctx.market_order, BTC, "sell", 0.02, reduce_only=True)
    assert position_of(sim.state(), key, BTC_ID) == 0.0
    await bot.until(lambda: not standing(sim, key))  # flat: nothing left to protect
    bot.runner.request_stop("test")
    await bot.finish()


def said(bot: Any, *codes: str) -> list[str]:
    """The bot's Decisions with one of ``codes``, in the order published, as "CODE cid"."""
    return [
        f"{d.code} {d.data.get('client_order_id')}"
        for d in bot.events
        if getattr(d, "code", None) in codes
    ]


async def test_a_growing_position_keeps_one_stop_and_never_stands_uncovered(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """The simulator answers -4130 to a second closePosition stop of a direction (as Binance
    does): each resize goes through the temporary reduce-only stop, never meets -4130, and
    leaves exactly one closePosition stop, at the new entry's trigger, for the whole size."""
    sim, key = account
    bot = await started(tmp_path, sim, key, protect={**PROTECT, "on_failure": "kill"})
    ctx = bot.runner.ctx
    assert ctx is not None

    def close_stops() -> list[dict[str, Any]]:
        """The closePosition STOP_MARKETs standing, once no temporary stop stands beside."""
        now = standing(sim, key)
        if any(a["reduceOnly"] for a in now):
            return []
        return [a for a in now if a["orderType"] == "STOP_MARKET" and a["closePosition"]]

    held = 0.01
    stop = (await bot.until(lambda: close_stops() and close_stops()))[0]
    for add in (0.01, 0.01):
        await asyncio.to_thread(ctx.market_order, BTC, "buy", add)
        held = round(held + add, 3)
        assert position_of(sim.state(), key, BTC_ID) == held
        old = stop["clientAlgoId"]
        stops = await bot.until(
            lambda o=old: (  # type: ignore[misc]
                len(s := close_stops()) == 1 and s[0]["clientAlgoId"] != o and len(
                    standing(sim, key)) == 2 and s
            )
        )  # fmt: skip
        stop = stops[0]
        assert stop["closePosition"] is True and stop["side"] == "SELL"
        entry = next(a for a in sim.state()["accounts"] if a["api_key"] == key)["positions"][0]
        assert float(stop["triggerPrice"]) == pytest.approx(float(entry["entryPrice"]) * 0.98,
                                                             abs=1.0)  # fmt: skip
        # the journal's order: the bridge stood before the old stop went, the new stop
        # before the bridge went
        bridge = next(a for a in algos(sim, key).values()
                      if a["reduceOnly"] and float(a["quantity"]) == held)  # fmt: skip
        steps = said(bot, "STOP_PLACED", "STOP_CANCELLED")
        at = steps.index(f"STOP_PLACED {bridge['clientAlgoId']}")
        assert steps[at : at + 4][:3] == [
            f"STOP_PLACED {bridge['clientAlgoId']}",
            f"STOP_CANCELLED {old}",
            f"STOP_PLACED {stop['clientAlgoId']}",
        ]
        assert f"STOP_CANCELLED {bridge['clientAlgoId']}" in steps[at + 3 :]

    every = list(algos(sim, key).values())
    assert stop_gaps(every) == []  # the simulator's timestamps: a stop stood at every moment
    assert len([a for a in every if a["closePosition"] and a["orderType"] == "STOP_MARKET"]) == 3
    assert not [d for d in bot.events if "-4130" in str(getattr(d, "sentence", ""))]
    assert not [d for d in bot.events if getattr(d, "layer", "") == "stops"
                and getattr(d, "action", "") == "reject"]  # fmt: skip
    assert not [d for d in bot.events if getattr(d, "layer", "") == "protect"
                and getattr(d, "action", "") in ("unprotected", "warn")]  # fmt: skip
    assert not bot.decisions("KILL_UNPROTECTED")  # on_failure = kill: nothing tripped
    bot.runner.request_stop("test")
    await bot.finish()


async def test_a_refused_temporary_stop_keeps_the_old_stop_said_and_retried(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """The exchange refuses every new algo order while the position grows: the bridge is
    refused, the old closePosition stop stays (the position covered, no trip with
    on_failure = kill), PROTECT_KEPT_... says so once; once the exchange takes orders again the
    retry replaces it, with no moment uncovered."""
    sim, key = account
    bot, ctx, old = await protected_bot(tmp_path, sim, key)
    sim.set_faults({"errors": {"rate": 1.0, "paths": ["/fapi/v1/algoOrder"], "methods": ["POST"],
                               "statuses": [503]}})  # fmt: skip
    await asyncio.to_thread(ctx.market_order, BTC, "buy", 0.01)
    (kept,) = await bot.until(lambda: [d for d in bot.events if str(getattr(d, "code", ""))
                                       .startswith("PROTECT_KEPT_")])  # fmt: skip
    assert kept.action == "warn" and old in kept.sentence and "0.02 BTC/USDT:USDT" in kept.sentence
    assert [a["clientAlgoId"] for a in standing(sim, key) if a["orderType"] == "STOP_MARKET"] == [
        old
    ]
    assert not bot.decisions("KILL_UNPROTECTED")
    assert not [d for d in bot.events if getattr(d, "action", "") == "unprotected"]

    sim.set_faults({})
    stop = await bot.until(
        lambda: [a for a in standing(sim, key) if a["orderType"] == "STOP_MARKET"
                 and a["closePosition"] and a["clientAlgoId"] != old
                 and not any(b["reduceOnly"] for b in standing(sim, key))]
    )  # fmt: skip
    assert len(stop) == 1
    assert algos(sim, key)[old]["algoStatus"] == "CANCELED"
    assert stop_gaps(list(algos(sim, key).values())) == []
    assert (
        len([d for d in bot.events if str(getattr(d, "code", "")).startswith("PROTECT_KEPT")]) == 1
    )
    bot.runner.request_stop("test")
    await bot.finish()


async def test_a_refused_close_position_stop_leaves_the_bridge_as_the_stop(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """The old stop's cancel is answered "unknown order" while it still stands, so the new
    closePosition stop meets -4130: the bridge stays as the position's stop (said,
    PROTECT_BRIDGE_..., no trip); the retry cancels the stray old stop, places the new one
    and cancels the bridge. A stop stood at every moment."""
    sim, key = account
    bot, ctx, old = await protected_bot(tmp_path, sim, key)
    sim.set_faults({"order_not_found": {"rate": 1.0, "paths": ["/fapi/v1/algoOrder"],
                                        "methods": ["DELETE"]}})  # fmt: skip
    await asyncio.to_thread(ctx.market_order, BTC, "buy", 0.01)
    (said_,) = await bot.until(lambda: [d for d in bot.events if str(getattr(d, "code", ""))
                                        .startswith("PROTECT_BRIDGE_")])  # fmt: skip
    assert said_.action == "warn" and "-4130" in said_.sentence
    (bridge,) = [a for a in standing(sim, key) if a["reduceOnly"]]
    assert bridge["orderType"] == "STOP_MARKET" and float(bridge["quantity"]) == 0.02
    assert bridge["clientAlgoId"] in said_.sentence
    assert not bot.decisions("KILL_UNPROTECTED")

    sim.set_faults({})
    stop = await bot.until(
        lambda: [a for a in standing(sim, key) if a["orderType"] == "STOP_MARKET"]
        if not any(a["reduceOnly"] or a["clientAlgoId"] == old for a in standing(sim, key))
        else []
    )  # fmt: skip
    assert len(stop) == 1 and stop[0]["closePosition"] is True
    every = algos(sim, key)
    assert every[old]["algoStatus"] == every[bridge["clientAlgoId"]]["algoStatus"] == "CANCELED"
    assert stop_gaps(list(every.values())) == []
    assert not [d for d in bot.events if getattr(d, "action", "") == "unprotected"]
    bot.runner.request_stop("test")
    await bot.finish()


async def test_an_old_stop_that_cannot_be_cancelled_stays_with_the_bridge_beside_it(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """Cancels fail (the exchange answers 503): the old closePosition stop and the bridge both
    stand (PROTECT_KEPT_CANCEL_FAILED, no trip, no -4130 tried); once cancels work, the retry
    reuses that bridge, and one closePosition stop is left, nothing else."""
    sim, key = account
    bot, ctx, old = await protected_bot(tmp_path, sim, key)
    sim.set_faults({"errors": {"rate": 1.0, "paths": ["/fapi/v1/algoOrder"],
                               "methods": ["DELETE"], "statuses": [503]}})  # fmt: skip
    await asyncio.to_thread(ctx.market_order, BTC, "buy", 0.01)
    (kept,) = await bot.until(lambda: bot.decisions("PROTECT_KEPT_CANCEL_FAILED"))
    (bridge,) = [a for a in standing(sim, key) if a["reduceOnly"]]
    assert bridge["clientAlgoId"] in kept.sentence and old in kept.sentence
    assert {a["clientAlgoId"] for a in standing(sim, key) if a["orderType"] == "STOP_MARKET"} == {
        old,
        bridge["clientAlgoId"],
    }
    # no closePosition stop was tried beside the standing one: nothing refused
    assert not [d for d in bot.events if getattr(d, "layer", "") == "stops"
                and getattr(d, "action", "") == "reject"]  # fmt: skip
    assert not bot.decisions("KILL_UNPROTECTED")

    sim.set_faults({})
    await bot.until(
        lambda: (
            len(now := standing(sim, key)) == 2
            and not any(a["reduceOnly"] or a["clientAlgoId"] == old for a in now)
        )
    )
    every = algos(sim, key)
    assert [a for a in every.values() if a["reduceOnly"]] == [every[bridge["clientAlgoId"]]]
    assert every[bridge["clientAlgoId"]]["algoStatus"] == "CANCELED"  # reused, then cancelled
    assert stop_gaps(list(every.values())) == []
    bot.runner.request_stop("test")
    await bot.finish()


async def test_order_helpers_time_in_force_batch_modify_leverage(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    bot = await started(tmp_path, sim, key)
    ctx = bot.runner.ctx
    assert ctx is not None
    mid = await asyncio.to_thread(ctx.mid, BTC)
    far = ctx.round_price(BTC, mid * 0.97)
    ioc = await asyncio.to_thread(ctx.limit_order, BTC, "buy", 0.002, far, time_in_force="IOC")
    orders = {o["clientOrderId"]: o for o in sim.state()["orders"] if o["account"] == key}
    assert orders[ioc["clientOrderId"]]["timeInForce"] == "IOC"
    assert orders[ioc["clientOrderId"]]["status"] == "EXPIRED"  # nothing to fill at 3 % under

    got = await asyncio.to_thread(
        ctx.place_orders,
        [
            {"symbol": BTC, "side": "buy", "amount": 0.002, "price": far},
            {"symbol": BTC, "side": "buy", "amount": -1.0, "price": far},  # refused
            {"symbol": BTC, "side": "buy", "amount": 0.003, "price": far, "time_in_force": "GTX"},
        ],
    )
    assert isinstance(got[0], dict) and isinstance(got[2], dict)
    assert getattr(got[1], "code", None) == "BAD_AMOUNT"
    orders = {o["clientOrderId"]: o for o in sim.state()["orders"] if o["account"] == key}
    assert orders[got[2]["clientOrderId"]]["timeInForce"] == "GTX"

    lower = ctx.round_price(BTC, mid * 0.96)
    moved = await asyncio.to_thread(ctx.modify_order, got[0], price=lower)
    orders = {o["clientOrderId"]: o for o in sim.state()["orders"] if o["account"] == key}
    assert orders[got[0]["clientOrderId"]]["status"] == "CANCELED"
    assert float(orders[moved["clientOrderId"]]["price"]) == lower
    assert orders[moved["clientOrderId"]]["status"] == "NEW"

    await asyncio.to_thread(ctx.set_leverage, BTC, 3)
    # the exchange refuses a margin-mode change while orders stand: explained, not raw ccxt
    with pytest.raises(OrderRejected) as info:
        await asyncio.to_thread(ctx.set_margin_mode, BTC, "isolated")
    assert info.value.code.startswith("EXCHANGE_") and "-404" in info.value.sentence
    await asyncio.to_thread(ctx.cancel_all, BTC)
    await asyncio.to_thread(ctx.market_order, BTC, "sell", 0.01, reduce_only=True)
    await asyncio.to_thread(ctx.set_margin_mode, BTC, "isolated")
    truth = next(a for a in sim.state()["accounts"] if a["api_key"] == key)
    assert truth["leverage"][BTC_ID] == 3 and truth["margin_type"][BTC_ID] == "ISOLATED"
    bot.runner.request_stop("test")
    await bot.finish()


async def test_gtd_orders_through_the_strategy_context(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """``good_till`` (epoch seconds) means time in force GTD: by limit_order, in a batch, and
    kept by modify_order; a bad one is refused before the exchange."""
    sim, key = account
    bot = await started(tmp_path, sim, key)
    ctx = bot.runner.ctx
    assert ctx is not None
    far = ctx.round_price(BTC, (await asyncio.to_thread(ctx.mid, BTC)) * 0.97)
    until = int(time.time()) + 3600

    def truth(cid: str) -> dict[str, Any]:
        return next(o for o in sim.state()["orders"] if o["clientOrderId"] == cid)

    one = await asyncio.to_thread(ctx.limit_order, BTC, "buy", 0.002, far, good_till=until)
    assert truth(one["clientOrderId"])["timeInForce"] == "GTD"
    assert truth(one["clientOrderId"])["goodTillDate"] == until * 1000
    (two,) = await asyncio.to_thread(
        ctx.place_orders,
        [{"symbol": BTC, "side": "buy", "amount": 0.002, "price": far, "good_till": until + 60}],
    )
    assert (
        isinstance(two, dict) and truth(two["clientOrderId"])["goodTillDate"] == (until + 60) * 1000
    )
    lower = ctx.round_price(BTC, far * 0.99)
    moved = await asyncio.to_thread(ctx.modify_order, one, price=lower)
    assert truth(moved["clientOrderId"])["timeInForce"] == "GTD"
    assert truth(moved["clientOrderId"])["goodTillDate"] == until * 1000
    before = len(sim.state()["orders"])
    for bad in (float("nan"), "soon"):
        with pytest.raises(OrderRejected) as info:
            await asyncio.to_thread(ctx.limit_order, BTC, "buy", 0.002, far, good_till=bad)
        assert info.value.code == "BAD_PARAM"
    assert len(sim.state()["orders"]) == before  # refused before the exchange
    bot.runner.request_stop("test")
    await bot.finish()


async def test_protective_orders_left_by_a_failed_cancel_are_cancelled_once_cancels_work(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """The position goes flat while cancels fail (503): its stop and take-profit stand on
    (PROTECT_CANCEL_FAILED, once each). They are cancelled once cancels work, so a new
    position gets a stop of its own, not the old one's stale closePosition stop (which
    would also refuse the new one, -4130, and trip the kill switch)."""
    sim, key = account
    bot, ctx, _old = await protected_bot(tmp_path, sim, key)
    first = {a["clientAlgoId"] for a in standing(sim, key)}
    sim.set_faults({"errors": {"rate": 1.0, "paths": ["/fapi/v1/algoOrder"],
                               "methods": ["DELETE"], "statuses": [503]}})  # fmt: skip
    await asyncio.to_thread(ctx.market_order, BTC, "sell", 0.01, reduce_only=True)
    assert position_of(sim.state(), key, BTC_ID) == 0.0
    await bot.until(lambda: len(bot.decisions("PROTECT_CANCEL_FAILED")) == 2, timeout=30)
    assert {a["clientAlgoId"] for a in standing(sim, key)} == first

    sim.set_faults({})
    await bot.until(lambda: not standing(sim, key), timeout=30)
    assert {algos(sim, key)[c]["algoStatus"] for c in first} == {"CANCELED"}
    assert len(bot.decisions("PROTECT_CANCEL_FAILED")) == 2  # said once each, not per try
    await asyncio.to_thread(ctx.market_order, BTC, "buy", 0.01)
    new = await bot.until(lambda: len(standing(sim, key)) == 2 and standing(sim, key))
    assert not first & {a["clientAlgoId"] for a in new}
    assert not bot.decisions("KILL_UNPROTECTED")
    bot.runner.request_stop("test")
    await bot.finish()
