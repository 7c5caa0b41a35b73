"""[protect] and conditional orders on a hedge-mode account (issue 18).

Over real HTTP against the simulator, whose own state (GET /__sim/state) is the truth:

- a hedge bot with [protect] that holds LONG and SHORT gets one closePosition STOP_MARKET per
  side, each with its positionSide (SELL LONG, BUY SHORT) and never reduceOnly;
- when one side grows, only that side's stop is replaced (through a temporary reduce-only
  stop of that side, never uncovered); the other side's stop stays the same order;
- a price move through the LONG side's stop closes the LONG side only;
- the strategy's ctx stop calls take ``position_side=`` (a reduce-only stop that would open
  its side is refused with POSITION_SIDE, before any request);
- the kill switch's flatten leaves no position and no algo order;
- a SIGKILLed hedge bot's stops outlive it (and the dead-man countdown) and close each side.

Binance New Algo Order: positionSide "must be sent in Hedge Mode", reduceOnly "cannot be sent
in Hedge Mode", closePosition "Close-All, used with STOP_MARKET or TAKE_PROFIT_MARKET":
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Algo-Order
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.integration.hedge_support import (
    LONG_QTY,
    SHORT_QTY,
    account_of,
    fresh,
    hedge,
    plain_ccxt,
    rejected,
    sides,
)
from tests.integration.kill_strategies.support import Bot as KillBot
from tests.integration.kill_strategies.support import MakeBotFiles, start_bot, wait_until
from tests.integration.protect.coverage import stop_gaps
from tests.integration.risk_support.bot import BTC, Bot, write_toml

__all__ = ["hedge"]  # the fixture (tests/integration/hedge_support.py)

PROTECT = {"enabled": True, "stop_pct": 2.0, "check_interval_s": 0.1}
COUNTDOWN_S = 1.0


def algos(sim: Any, key: str) -> list[dict[str, Any]]:
    return [a for a in sim.state()["algo_orders"] if a["account"] == key]


def standing(sim: Any, key: str) -> dict[str, dict[str, Any]]:
    """The account's waiting algo orders by positionSide (exactly one per side, or {})."""
    new = [a for a in algos(sim, key) if a["algoStatus"] == "NEW"]
    by_side = {a["positionSide"]: a for a in new}
    return by_side if len(by_side) == len(new) else {}


def entry(sim: Any, key: str, side: str) -> float:
    acct = next(a for a in sim.state()["accounts"] if a["api_key"] == key)
    return next(float(p["entryPrice"]) for p in acct["positions"] if p["positionSide"] == side)


@pytest.mark.parametrize("streams", [False, True], ids=["REST reconcile", "user stream"])
async def test_a_stop_per_side_follows_each_side_and_fires_for_its_side_only(
    hedge: tuple[Any, str, str], tmp_path: Path, streams: bool
) -> None:
    sim, key, _ = hedge
    toml = write_toml(
        tmp_path, sim.base_url, exchange={"streams": streams}, risk={"accept_no_limits": True},
        protect=PROTECT,
    )  # fmt: skip
    async with Bot(toml) as bot:
        await bot.do(
            lambda ctx: fresh(ctx).market_order(BTC, "buy", LONG_QTY, position_side="LONG")
        )
        await bot.do(
            lambda ctx: fresh(ctx).market_order(BTC, "sell", SHORT_QTY, position_side="SHORT")
        )
        first = await bot.until(
            lambda: set(standing(sim, key)) == {"LONG", "SHORT"} and standing(sim, key)
        )
        long_sl, short_sl = first["LONG"], first["SHORT"]
        assert (long_sl["side"], short_sl["side"]) == ("SELL", "BUY")
        for stop in (long_sl, short_sl):
            assert stop["orderType"] == "STOP_MARKET" and stop["closePosition"] is True
            assert stop["reduceOnly"] is False
        assert float(long_sl["triggerPrice"]) == pytest.approx(
            entry(sim, key, "LONG") * 0.98, abs=1
        )
        assert float(short_sl["triggerPrice"]) == pytest.approx(
            entry(sim, key, "SHORT") * 1.02, abs=1
        )

        # the LONG side grows: its stop is replaced, the SHORT side's stays the same order
        await bot.do(
            lambda ctx: fresh(ctx).market_order(BTC, "buy", LONG_QTY, position_side="LONG")
        )
        # (the new closePosition stop alone on the side: the bridge also stands alone on it
        # for a moment, between the old stop's cancel and the new stop's placement)
        second = await bot.until(
            lambda: (
                (new := (s := standing(sim, key)).get("LONG", long_sl))["algoId"]
                != long_sl["algoId"]
                and new["closePosition"]
                and s
            )
        )
        assert second["SHORT"]["algoId"] == short_sl["algoId"]
        every = {a["algoId"]: a for a in algos(sim, key)}
        assert every[long_sl["algoId"]]["algoStatus"] == "CANCELED"
        # through the temporary reduce-only SELL LONG stop (a second closePosition stop of
        # the side would be refused, -4130): the LONG side was never without a stop
        (bridge,) = [a for a in every.values() if a["positionSide"] == "LONG"
                     and not a["closePosition"]]  # fmt: skip
        assert bridge["algoStatus"] == "CANCELED" and bridge["side"] == "SELL"
        assert bridge["createTime"] <= every[long_sl["algoId"]]["updateTime"]
        assert second["LONG"]["createTime"] <= bridge["updateTime"]
        assert stop_gaps(list(every.values()), "LONG") == []
        assert stop_gaps(list(every.values()), "SHORT") == []

        # the strategy's own conditional orders name the side
        trigger = round(float(short_sl["triggerPrice"]) - 50.0, 1)
        placed = await bot.do(
            lambda ctx: ctx.stop_market_order(BTC, "buy", trigger, SHORT_QTY, position_side="SHORT")
        )
        assert placed["info"]["positionSide"] == "SHORT" and placed["reduceOnly"] is False
        before = len(algos(sim, key))
        r = await rejected(
            bot, lambda ctx: ctx.stop_market_order(BTC, "buy", trigger, 0.001, position_side="LONG")
        )
        assert r.code == "POSITION_SIDE" and "would open it" in r.sentence
        r = await rejected(bot, lambda ctx: ctx.stop_market_order(BTC, "sell", 50000.0, 0.001))
        assert r.code == "POSITION_SIDE" and "position_side LONG or SHORT" in r.sentence
        assert len(algos(sim, key)) == before  # refused before any request
        await bot.do(lambda ctx: ctx.cancel_conditional(placed, BTC))

        # the price falls through the LONG side's stop: the LONG side only is closed
        sim.jump("BTCUSDT", -3.0)
        await bot.until(lambda: sides(sim, key) == {"SHORT": -SHORT_QTY})
        fired = {a["algoId"]: a for a in algos(sim, key)}[second["LONG"]["algoId"]]
        assert fired["algoStatus"] == "FINISHED"
        child = next(
            o for o in sim.state()["orders"] if str(o["orderId"]) == fired["actualOrderId"]
        )
        assert (child["side"], child["positionSide"], child["reduceOnly"]) == (
            "SELL",
            "LONG",
            False,
        )
        assert standing(sim, key).get("SHORT", {}).get("algoId") == short_sl["algoId"]

        killed = await asyncio.to_thread(run_cli, "kill", "--level", "flatten", "--wait", "30")
        assert killed.returncode == 0, killed.stdout + killed.stderr
        await bot.stop()
    assert not any(sides(sim, key).values())
    assert [a for a in algos(sim, key) if a["algoStatus"] == "NEW"] == []  # none left
    assert not any(o["reduceOnly"] for o in sim.state()["orders"])


def test_a_sigkilled_hedge_bot_leaves_a_stop_per_side_and_the_exchange_closes_each_side(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[KillBot]
) -> None:
    """Issue 17's SIGKILL bar (tests/integration/protect/test_protect_sigkill.py), on a
    hedge-mode account: both sides' stops outlive the bot and each closes its own side."""
    sim, creds, toml = bot_files(
        params={"mode": "idle", "orders_per_symbol": 0, "open_position": 0.01,
                "open_short": 0.01},
        strategy={"symbols": [BTC], "tick_interval": 0.2},
        kill={"deadman_countdown_s": COUNTDOWN_S, "deadman_refresh_s": 0.25},
        extra={"protect": {"enabled": True, "stop_pct": 2.0, "check_interval_s": 0.2}},
    )  # fmt: skip
    key, secret = creds
    plain_ccxt(sim, key, secret).fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    stops = wait_until(lambda: len(s := standing(sim, key)) == 2 and s, timeout=30)
    assert sides(sim, key) == {"LONG": 0.01, "SHORT": -0.01}
    assert {(s["side"], s["positionSide"]) for s in stops.values()} == {
        ("SELL", "LONG"), ("BUY", "SHORT")
    }  # fmt: skip

    bot.signal(signal.SIGKILL)
    bot.proc.wait(10)
    # the dead-man countdown lapses (the exchange cancels the plain orders) ...
    wait_until(lambda: not account_of(sim, key)["countdowns"], timeout=COUNTDOWN_S + 5)
    # ... and both stops still stand, both sides still open
    after = standing(sim, key)
    assert {k: a["algoId"] for k, a in after.items()} == {k: a["algoId"] for k, a in stops.items()}
    assert sides(sim, key) == {"LONG": 0.01, "SHORT": -0.01}

    sim.jump("BTCUSDT", -3.0)  # through the LONG side's stop (2 % under its entry)
    wait_until(lambda: sides(sim, key) == {"SHORT": -0.01}, timeout=10)
    sim.jump("BTCUSDT", 6.5)  # back up through the SHORT side's stop (2 % over its entry)
    wait_until(lambda: sides(sim, key) == {}, timeout=10)
    fired = {a["algoId"]: a for a in algos(sim, key)}
    for stop in stops.values():
        assert fired[stop["algoId"]]["algoStatus"] == "FINISHED"
