"""Conditional orders through a real run (ctx -> guarded pipeline -> ccxt over HTTP -> the
simulator's Algo Order API), judged by the simulator's own state."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from perpbot.engine.strategy import OrderRejected
from tests.integration.kill_strategies.support import (
    InProcessBot,
    position_of,
    write_strategy,
)

BTC, BTC_ID = "BTC/USDT:USDT", "BTCUSDT"


def algos(sim: Any, key: str) -> dict[str, dict[str, Any]]:
    return {a["clientAlgoId"]: a for a in sim.state()["algo_orders"] if a["account"] == key}


async def started(tmp_path: Path, sim: Any, key: str, **extra: Any) -> InProcessBot:
    toml = write_strategy(
        tmp_path,
        sim.base_url,
        params={"mode": "idle", "orders_per_symbol": 0, "open_position": 0.01},
        strategy={"symbols": [BTC], "tick_interval": 0.1},
        extra=extra,
    )
    bot = InProcessBot(toml).start()
    await bot.until(lambda: bot.runner.positions.get(BTC) and bot.runner.ctx is not None)
    return bot


async def stopped(bot: InProcessBot) -> None:
    bot.runner.request_stop("test")
    await bot.finish()


async def test_each_conditional_order_type_reaches_the_algo_api(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    bot = await started(tmp_path, sim, key)
    ctx = bot.runner.ctx
    assert ctx is not None
    mark = await asyncio.to_thread(ctx.mark, BTC)
    made = {
        "stop": await asyncio.to_thread(ctx.stop_market_order, BTC, "sell", mark * 0.97, 0.004),
        "close": await asyncio.to_thread(
            ctx.stop_market_order, BTC, "sell", mark * 0.96, close_position=True
        ),
        "tp": await asyncio.to_thread(ctx.take_profit_order, BTC, "sell", mark * 1.05, 0.004),
        "tp_limit": await asyncio.to_thread(
            ctx.take_profit_order, BTC, "sell", mark * 1.04, 0.002, price=mark * 1.039
        ),
        "trail": await asyncio.to_thread(ctx.trailing_stop_order, BTC, "sell", 0.003, 1.5),
    }
    seen = algos(sim, key)
    got = {name: seen[o["clientOrderId"]] for name, o in made.items()}
    assert {n: a["orderType"] for n, a in got.items()} == {
        "stop": "STOP_MARKET",
        "close": "STOP_MARKET",
        "tp": "TAKE_PROFIT_MARKET",
        "tp_limit": "TAKE_PROFIT",
        "trail": "TRAILING_STOP_MARKET",
    }
    assert all(a["algoStatus"] == "NEW" and a["side"] == "SELL" for a in got.values())
    assert got["close"]["closePosition"] is True and got["stop"]["reduceOnly"] is True
    assert got["trail"]["callbackRate"] == "1.5" and got["stop"]["workingType"] == "MARK_PRICE"
    assert abs(float(got["stop"]["triggerPrice"]) - mark * 0.97) < 0.2
    listed = await asyncio.to_thread(ctx.conditional_orders, BTC)
    assert {o["clientOrderId"] for o in listed} == set(seen)
    await asyncio.to_thread(ctx.cancel_conditional, made["tp"], BTC)
    assert algos(sim, key)[made["tp"]["clientOrderId"]]["algoStatus"] == "CANCELED"
    stops = [d for d in bot.events if getattr(d, "code", "") == "STOP_PLACED"]
    assert len(stops) == 5  # one explained record per placement
    await stopped(bot)
    # a normal stop cancels the run's plain orders; the protective stops stay standing
    assert algos(sim, key)[made["close"]["clientOrderId"]]["algoStatus"] == "NEW"


async def test_a_stop_is_refused_when_placed_and_cancelled_when_it_would_breach_at_trigger(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    bot = await started(
        tmp_path, sim, key, risk={"max_position_notional": 2500.0, "max_order_notional": 2000.0}
    )
    ctx = bot.runner.ctx
    assert ctx is not None
    mark = await asyncio.to_thread(ctx.mark, BTC)
    # a sell stop above the mark would fire at once: refused, nothing reaches the exchange
    with pytest.raises(OrderRejected) as info:
        await asyncio.to_thread(ctx.stop_market_order, BTC, "sell", mark * 1.01, 0.004)
    assert info.value.code == "STOP_WOULD_TRIGGER_NOW"
    # an opening buy stop whose fill would exceed max_position_notional: refused when placed
    with pytest.raises(OrderRejected) as info:
        await asyncio.to_thread(
            ctx.stop_market_order, BTC, "buy", mark * 1.02, 0.05, reduce_only=False
        )
    assert info.value.code in ("STOP_RISK_POSITION_NOTIONAL", "STOP_RISK_ORDER_NOTIONAL")
    assert not algos(sim, key)  # neither reached the Algo Order API
    # an opening buy stop that fits now ...
    held = position_of(sim.state(), key, BTC_ID)
    room = 2500.0 / (mark * 1.02) - held
    amount = round(room * 0.6, 3)
    placed = await asyncio.to_thread(
        ctx.stop_market_order, BTC, "buy", mark * 1.02, amount, reduce_only=False
    )
    assert algos(sim, key)[placed["clientOrderId"]]["algoStatus"] == "NEW"
    # ... no longer fits once the position has grown: cancelled before it can fire
    await asyncio.to_thread(ctx.market_order, BTC, "buy", round(room * 0.5, 3))
    await bot.until(
        lambda: algos(sim, key)[placed["clientOrderId"]]["algoStatus"] == "CANCELED", timeout=10
    )
    refused = bot.decisions("STOP_REFUSED_AT_TRIGGER")
    assert refused and "max_position_notional" in refused[0].sentence
    await stopped(bot)


async def test_an_unprotectable_position_is_explained_and_trips_the_kill_switch(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    # the exchange's Algo Order API is down: every stop placement answers 503
    sim.set_faults({"errors": {"rate": 1.0, "paths": ["/fapi/v1/algoOrder"], "methods": ["POST"]}})
    protect = {"enabled": True, "stop_pct": 2.0, "on_failure": "kill", "check_interval_s": 0.1}
    bot = await started(tmp_path, sim, key, protect=protect)
    await bot.until(lambda: bot.decisions("KILL_UNPROTECTED"), timeout=10)
    why = [e for e in bot.events if getattr(e, "action", "") == "unprotected"]
    assert why and why[0].code.startswith("PROTECT_") and "no exchange-side stop" in why[0].sentence
    assert "has no exchange-side stop" in bot.decisions("KILL_UNPROTECTED")[0].sentence
    assert not algos(sim, key)
    summary = await bot.finish()
    assert summary is not None
