"""The index basket in a real run: three simulator venues price the trading venue's symbol;
one jumps 10 %, then two of three freeze. The bot keeps trading on a reference that does not
move, then goes reduce-only (or trips the kill switch) and says why, in its log and status."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from perpbot.engine import OrderRejected
from perpbot.engine.context import Context
from tests.integration.risk_support.bot import BTC, Bot, write_toml

CALM = {"volatility": 0.00002, "jump_rate": 0.0, "taker_rate": 0.0, "history_minutes": 30}


@pytest.fixture
def venues(sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, list[Any]]:
    trading = sim_factory(market=CALM)
    key, secret = trading.create_account()
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    return trading, [sim_factory(market=CALM) for _ in range(3)]


def basket(sources: list[Any], **index: Any) -> dict[str, Any]:
    return {
        "index": {
            "min_sources": 2,
            "max_age_s": 1.0,
            "poll_interval_s": 0.2,
            "sources": [
                {"name": n, "exchange": "sim", "url": h.base_url, "symbol": BTC}
                for n, h in zip("abc", sources, strict=True)
            ],
            **index,
        },
        "risk": {"price_band_pct": 1.0},
    }


def near(ctx: Context, side: str = "buy") -> Any:
    mid = ctx.mid(BTC)
    price = round(mid * (0.998 if side == "buy" else 1.002), 1)
    return ctx.post_only_order(BTC, side, 0.002, price)  # type: ignore[arg-type]


async def test_broken_sources_then_reduce_only(
    venues: tuple[Any, list[Any]], tmp_path: Path
) -> None:
    trading, (a, b, c) = venues
    toml = write_toml(tmp_path, trading.base_url, **basket([a, b, c]))
    async with Bot(toml) as bot:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.004, decided_price=ctx.mid(BTC)))
        state = bot.runner.client.pipeline.layer("risk").state
        before = state.index[BTC].price

        c.set_faults({"price_jump": {"BTCUSDT": 10.0}})
        await bot.until(lambda: bot.decisions("INDEX_SOURCE_OUTLIER"))
        assert abs(state.index[BTC].price - before) / before < 0.001
        await bot.do(near)  # the band still judges against the undisturbed reference

        a.set_faults({"freeze_prices": True})
        b.set_faults({"freeze_prices": True})
        await bot.until(lambda: bot.decisions("INDEX_UNHEALTHY"))
        with pytest.raises(OrderRejected) as info:
            await bot.do(near)
        assert info.value.code == "RISK_REDUCE_ONLY_MODE"
        assert "fewer than [index] min_sources 2" in info.value.sentence
        exit_ = await bot.do(lambda ctx: ctx.market_order(BTC, "sell", 0.002, reduce_only=True))
        assert exit_["status"] == "closed"

        def both_stale() -> dict[str, Any] | None:
            risk = bot.status()["snapshot"]["extras"]["risk"]
            sources = {s["name"]: s["status"] for s in risk["index"][BTC]["sources"]}
            return risk if sources["a"] == sources["b"] == "stale" else None

        status = await bot.until(both_stale)

        a.set_faults({})
        b.set_faults({})
        c.set_faults({"price_jump": {"BTCUSDT": -9.0909}})
        await bot.until(lambda: bot.decisions("INDEX_RECOVERED"), timeout=20)
        await bot.do(near)  # healthy again: orders that add exposure are allowed

    logged = [e for e in bot.journal() if e.get("layer") in ("index", "risk")]
    codes = [e["code"] for e in logged]
    for code in ("INDEX_SOURCE_OUTLIER", "INDEX_SOURCE_STALE", "INDEX_UNHEALTHY"):
        assert code in codes
    rejection = next(e for e in logged if e["code"] == "RISK_REDUCE_ONLY_MODE")
    assert "the bot is reduce-only because the BTC/USDT:USDT index has" in rejection["sentence"]
    assert status["index"][BTC]["healthy"] is False
    assert "min_sources 2" in status["reduce_only"][BTC]
    assert any(al["code"] == "INDEX_UNHEALTHY" for al in status["alerts"])


async def test_unhealthy_basket_trips_the_kill_switch_when_told_to(
    venues: tuple[Any, list[Any]], tmp_path: Path
) -> None:
    trading, (a, b, c) = venues
    toml = write_toml(tmp_path, trading.base_url, **basket([a, b, c], on_unhealthy="kill"))
    bot = Bot(toml)
    async with bot:
        await bot.do(near)
        a.set_faults({"freeze_prices": True})
        b.set_faults({"freeze_prices": True})
        assert bot.task is not None
        summary = await asyncio.wait_for(bot.task, 30)  # the kill switch stops the run
    (alert,) = bot.decisions("INDEX_UNHEALTHY")
    assert alert.data["trip"] is True and "tripping the kill switch" in alert.sentence
    assert summary["exit_code"] == 4
    assert "INDEX_UNHEALTHY" in bot.decisions("KILL_ANOMALY")[0].sentence
