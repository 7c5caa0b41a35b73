"""Post-trade monitors in a real run against the simulator: a thin book under resting
orders, a cancel storm, slippage against the decision price, mark/index and funding figures,
and a leverage change from outside the bot that trips the kill switch."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from perpbot.client.transport import make_exchange
from perpbot.engine import OrderRejected
from perpbot.engine.context import Context
from tests.integration.risk_support.bot import BTC, Bot, quiet, write_toml


@pytest.fixture
def venue(sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str, str]:
    sim = sim_factory(market=quiet(), funding={"interval_s": 30, "rate": 0.0001})
    key, secret = sim.create_account()
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    return sim, key, secret


MONITOR = {
    "poll_interval_s": 0.2,
    "thin_book": {"enabled": True, "depth": 50, "min_orders": 2},
    "cancel_burst": {"min_cancels": 4, "window_s": 5},
    "leverage_change": {"enabled": True, "grace_s": 5, "trip": True},
    "mark_index": {"enabled": True, "max_bps": 0.1},
    "funding_vol": {"enabled": True, "funding_interval_s": 30, "vol_candles": 10},
    "slippage": {"window": 2, "max_mean_bps": 25},
}


def ladder(ctx: Context) -> list[dict[str, Any]]:
    """Three post-only bids on the crowd's own levels, just under the best bid."""
    best = ctx.order_book(BTC, 5)["bids"][0][0]
    return [ctx.post_only_order(BTC, "buy", 0.002, round(best - 0.2 * k, 1)) for k in (1, 2, 3)]


def churn(ctx: Context) -> str:
    """Place and cancel far below the market until something says stop."""
    best = ctx.order_book(BTC, 5)["bids"][0][0]
    for _ in range(10):
        try:
            o = ctx.post_only_order(BTC, "buy", 0.002, round(best * 0.996, 1))
        except OrderRejected as exc:
            return exc.code
        ctx.cancel_order(o)
    return "never refused"


async def outside_leverage(url: str, key: str, secret: str, leverage: int) -> None:
    ex = make_exchange("sim", api_key=key, secret=secret, base_url=url)
    try:
        await ex.load_markets()
        await ex.set_leverage(leverage, BTC)
    finally:
        await ex.close()


async def test_monitors_explain_what_they_see(venue: tuple[Any, str, str], tmp_path: Path) -> None:
    sim, key, secret = venue
    toml = write_toml(tmp_path, sim.base_url, monitor=MONITOR, risk={"max_cancel_rate": 6})
    bot = Bot(toml)
    async with bot:
        state = bot.runner.client.pipeline.layer("risk").state
        await bot.until(lambda: BTC in state.books)
        await bot.do(ladder)
        await asyncio.sleep(1.0)  # a few books at normal depth: the norm
        assert not bot.decisions("MONITOR_THIN_BOOK")
        sim.set_faults({"thin_book": 0.05})
        await bot.until(lambda: bot.decisions("MONITOR_THIN_BOOK"))
        sim.set_faults({})
        await bot.do(lambda ctx: ctx.cancel_all(BTC))

        # fills far from the price they were decided on
        for _ in range(2):
            await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002, decided_price=50000.0))
        await bot.until(lambda: bot.decisions("MONITOR_SLIPPAGE"))
        await bot.until(lambda: bot.decisions("MONITOR_MARK_INDEX"))
        await bot.until(lambda: bot.decisions("MONITOR_FUNDING_VOL"))

        assert await bot.do(churn) == "RISK_CANCEL_RATE"
        await bot.until(lambda: bot.decisions("MONITOR_CANCEL_BURST"))

        # the bot's own leverage change is expected; one from outside is not
        await bot.do(lambda ctx: ctx.set_leverage(BTC, 10))
        await asyncio.sleep(0.6)
        assert not bot.decisions("MONITOR_LEVERAGE_CHANGE")
        await outside_leverage(sim.base_url, key, secret, 50)
        await bot.until(lambda: bot.decisions("MONITOR_LEVERAGE_CHANGE"))
        assert bot.task is not None
        summary = await asyncio.wait_for(bot.task, 30)  # trip = true: the kill switch stops it

    (lev,) = bot.decisions("MONITOR_LEVERAGE_CHANGE")
    assert lev.layer == "monitor" and lev.action == "alert" and lev.data["trip"] is True
    assert "leverage from 10x to 50x on BTC/USDT:USDT, and not by this bot" in lev.sentence
    assert summary["exit_code"] == 4 and bot.decisions("KILL_ANOMALY")

    logged = {e["code"]: e for e in bot.journal() if e.get("layer") == "monitor"}
    expected = {
        "MONITOR_THIN_BOOK": "resting orders on BTC/USDT:USDT sit at thin book levels",
        "MONITOR_CANCEL_BURST": "cancels in the last 5 s",
        "MONITOR_SLIPPAGE": "bps of slippage against their decision price",
        "MONITOR_MARK_INDEX": "beyond mark_index max_bps 0.1",
        "MONITOR_FUNDING_VOL": "every 30 s",
        "MONITOR_LEVERAGE_CHANGE": "not by this bot",
    }
    for code, words in expected.items():
        assert code in logged, f"{code} not in the run's log"
        assert words in logged[code]["sentence"], logged[code]["sentence"]
        assert logged[code]["data"]["trip"] is (code == "MONITOR_LEVERAGE_CHANGE")
    risk_log = [e for e in bot.journal() if e.get("code") == "RISK_CANCEL_RATE"]
    assert risk_log and "max_cancel_rate 6" in risk_log[0]["sentence"]
