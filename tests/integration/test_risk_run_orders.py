"""Pre-trade checks in a real run: flags as the exchange receives them, reduce-only against
the live position and open reduce-only orders, the price band against the index, stale
decisions, the liquidation band, and each refusal's sentence in the run's log."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from perpbot.engine import OrderRejected
from perpbot.engine.context import Context
from tests.integration.risk_support.bot import BTC, Bot, quiet, write_toml


@pytest.fixture
def venue(sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    sim = sim_factory(market=quiet())
    key, secret = sim.create_account()
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    return sim, key


def sim_order(sim: Any, cid: str) -> dict[str, Any]:
    return next(o for o in sim.state()["orders"] if o["clientOrderId"] == cid)


def fresh(ctx: Context) -> Context:
    """Look at the price first, as a strategy does before it decides."""
    ctx.mid(BTC)
    return ctx


async def rejected(bot: Bot, fn: Any) -> OrderRejected:
    with pytest.raises(OrderRejected) as info:
        await bot.do(fn)
    return info.value


async def test_orders_are_judged_and_flags_reach_the_exchange(
    venue: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = venue
    toml = write_toml(
        tmp_path,
        sim.base_url,
        risk={
            "price_band_pct": 1.0,
            "max_decision_age_s": 1.0,
            "liquidation_band_pct": 20.0,
            "accept_no_limits": True,  # the 1 BTC order must reach the liquidation check
        },
        # on streams the exchange's liquidation price comes with the periodic REST read
        exchange={"reconcile_interval": 1},
    )
    async with Bot(toml) as bot:
        mid = await bot.do(lambda ctx: ctx.mid(BTC))
        await bot.do(lambda ctx: fresh(ctx).market_order(BTC, "buy", 0.003))
        await bot.do(lambda ctx: ctx.refresh())

        # post-only and reduce-only reach the exchange on every order type that has them
        po = await bot.do(
            lambda ctx: fresh(ctx).post_only_order(BTC, "buy", 0.002, round(mid * 0.995))
        )
        exit_ = await bot.do(
            lambda ctx: fresh(ctx).post_only_order(
                BTC, "sell", 0.002, round(mid * 1.005), reduce_only=True
            )
        )
        assert sim_order(sim, po["clientOrderId"])["timeInForce"] == "GTX"
        placed = sim_order(sim, exit_["clientOrderId"])
        assert placed["timeInForce"] == "GTX" and placed["reduceOnly"] is True

        # 0.002 of the 0.003 long is held by the resting exit: 0.002 more would exceed it
        r = await rejected(
            bot, lambda ctx: fresh(ctx).market_order(BTC, "sell", 0.002, reduce_only=True)
        )
        assert r.code == "RISK_REDUCE_ONLY_EXCEEDS"
        assert "0.002 held by the bot's other open reduce-only orders" in r.sentence
        done = await bot.do(
            lambda ctx: fresh(ctx).market_order(BTC, "sell", 0.001, reduce_only=True)
        )
        assert sim_order(sim, done["clientOrderId"])["reduceOnly"] is True
        r = await rejected(
            bot, lambda ctx: fresh(ctx).market_order(BTC, "buy", 0.001, reduce_only=True)
        )
        assert r.code == "RISK_REDUCE_ONLY_WRONG_SIDE"

        # the price band against the index (the exchange's own, no [index] sources)
        r = await rejected(
            bot, lambda ctx: fresh(ctx).limit_order(BTC, "buy", 0.002, round(mid * 0.9))
        )
        assert r.code == "RISK_PRICE_BAND" and "below the index" in r.sentence

        def stale(ctx: Context) -> Any:
            ctx.mid(BTC)
            time.sleep(1.2)  # the strategy dithers past max_decision_age_s
            return ctx.market_order(BTC, "buy", 0.002)

        r = await rejected(bot, stale)
        assert r.code == "RISK_STALE_PRICE" and "max_decision_age_s 1 s" in r.sentence

        # 1 BTC on 10 000 USDT at 20x leaves the position about 16 % from liquidation
        r = await rejected(bot, lambda ctx: fresh(ctx).market_order(BTC, "buy", 1.0))
        assert r.code == "RISK_LIQUIDATION_BAND" and "liquidation_band_pct 20 %" in r.sentence

        # turn the 0.002 long into a 0.004 short: a short always has a liquidation price
        await bot.do(lambda ctx: fresh(ctx).market_order(BTC, "sell", 0.006))
        await bot.do(lambda ctx: ctx.refresh())
        await bot.until(lambda: bot.status().get("snapshot", {}).get("extras", {}).get("risk"))

        def short_seen() -> Any:  # a status file written after the short was seen (an
            # earlier one still shows the long, which has a liquidation price too)
            liq = bot.status()["snapshot"]["extras"]["risk"]["liquidation"].get(BTC)
            # (on streams the short arrives before the periodic REST read that brings
            # its exchange-side liquidation price)
            return (
                liq is not None
                and liq["amount"] == pytest.approx(-0.004)
                and liq["liquidation_price"] is not None
            )

        await bot.until(short_seen)
        status = bot.status()
    summary = await bot.stop()

    codes = {"RISK_REDUCE_ONLY_EXCEEDS", "RISK_PRICE_BAND", "RISK_STALE_PRICE"}
    logged = {e["code"]: e for e in bot.journal() if e.get("layer") == "risk"}
    assert codes | {"RISK_LIQUIDATION_BAND", "RISK_REDUCE_ONLY_WRONG_SIDE"} <= set(logged)
    for code in codes:
        assert logged[code]["action"] == "reject" and logged[code]["sentence"]
    assert summary["rejections"]["RISK_PRICE_BAND"] == 1
    assert not [o for o in sim.state()["orders"] if o["account"] == key and o["origQty"] == "1.000"]

    # the status file: our liquidation estimate agrees with the exchange's (same brackets)
    liq = status["snapshot"]["extras"]["risk"]["liquidation"][BTC]
    assert liq["brackets"] == "exchange"
    assert liq["amount"] == pytest.approx(-0.004)
    assert liq["estimate"] == pytest.approx(liq["liquidation_price"], rel=0.01)
    assert liq["distance_pct"] > 1000  # 10 000 USDT behind a 240 USDT short
    idx = status["snapshot"]["extras"]["risk"]["index"][BTC]
    assert idx["healthy"] and idx["sources"][0]["name"] == "exchange"
