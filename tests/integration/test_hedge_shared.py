"""Two bots sharing one hedge-mode account and symbol (``[strategy] share_symbols``).

Over real HTTP against the simulator, whose own state (GET /__sim/state) is the truth: each
bot's LONG and SHORT come from its own fills (each fill's positionSide), its reduce-only
room on a side is its own side's, and one bot closing its side leaves the other's alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perpbot.engine import OrderRejected
from tests.integration.hedge_support import fresh, plain_ccxt, sides
from tests.integration.risk_support.bot import BTC, Bot, quiet, write_toml

A_LONG, B_LONG, B_SHORT = 0.01, 0.002, 0.005


@pytest.fixture
def hedged(sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    sim = sim_factory(market=quiet())
    key, secret = sim.create_account()
    plain_ccxt(sim, key, secret).fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    return sim, key


def shared_toml(tmp_path: Path, url: str, name: str, streams: bool) -> Path:
    where = tmp_path / name
    where.mkdir()
    return write_toml(
        where,
        url,
        strategy={"name": name, "share_symbols": True},
        exchange={"streams": streams, "reconcile_interval": 600},
        risk={"symbols": {BTC: {"max_position_notional": 1e6}}, "accept_no_limits": True},
    )


def own_sides(bot: Bot) -> dict[str, float]:
    return {k: p.amount for k, p in bot.runner.state.legs.items()}


async def refused(bot: Bot, fn: Any) -> str:
    with pytest.raises(OrderRejected) as info:
        await bot.do(fn)
    return info.value.code


@pytest.mark.parametrize("streams", [False, True], ids=["REST reconcile", "user stream"])
async def test_two_bots_on_one_hedge_account_each_see_and_close_only_their_own_sides(
    hedged: tuple[Any, str], tmp_path: Path, streams: bool
) -> None:
    sim, key = hedged
    async with (
        Bot(shared_toml(tmp_path, sim.base_url, "a", streams)) as a,
        Bot(shared_toml(tmp_path, sim.base_url, "b", streams)) as b,
    ):
        await a.do(lambda ctx: fresh(ctx).market_order(BTC, "buy", A_LONG, position_side="LONG"))
        await b.do(lambda ctx: fresh(ctx).market_order(BTC, "buy", B_LONG, position_side="LONG"))
        await b.do(lambda ctx: fresh(ctx).market_order(BTC, "sell", B_SHORT, position_side="SHORT"))
        assert sides(sim, key) == pytest.approx({"LONG": A_LONG + B_LONG, "SHORT": -B_SHORT})
        for bot in (a, b):
            await bot.do(lambda ctx: ctx.refresh())
        await a.until(lambda: own_sides(a) == pytest.approx({f"{BTC}|LONG": A_LONG}))
        want_b = {f"{BTC}|LONG": B_LONG, f"{BTC}|SHORT": -B_SHORT}
        await b.until(lambda: own_sides(b) == pytest.approx(want_b))
        seen = await b.do(
            lambda ctx: (
                ctx.position(BTC, position_side="LONG").amount,
                ctx.position(BTC, position_side="SHORT").amount,
                ctx.position(BTC).amount,
            )
        )
        assert seen == pytest.approx((B_LONG, -B_SHORT, B_LONG - B_SHORT))
        assert await a.do(lambda ctx: ctx.position(BTC, position_side="SHORT").amount) == 0.0

        # a's close room is its own side's: not b's SHORT, not more than its own LONG
        before = len(sim.state()["orders"])
        code = await refused(
            a, lambda ctx: fresh(ctx).reduce_only_order(BTC, "buy", 0.001, position_side="SHORT")
        )
        assert code == "RISK_REDUCE_ONLY_NO_POSITION"
        code = await refused(
            a,
            lambda ctx: fresh(ctx).reduce_only_order(
                BTC, "sell", A_LONG + B_LONG, position_side="LONG"
            ),
        )
        assert code == "RISK_REDUCE_ONLY_EXCEEDS"
        code = await refused(
            b,
            lambda ctx: fresh(ctx).reduce_only_order(
                BTC, "sell", B_LONG + 0.001, position_side="LONG"
            ),
        )
        assert code == "RISK_REDUCE_ONLY_EXCEEDS"
        assert len(sim.state()["orders"]) == before  # refused before any request

        # a flattens its side: b's LONG and SHORT stay on the account
        await a.do(
            lambda ctx: fresh(ctx).reduce_only_order(BTC, "sell", A_LONG, position_side="LONG")
        )
        assert sides(sim, key) == pytest.approx({"LONG": B_LONG, "SHORT": -B_SHORT})
        await a.do(lambda ctx: ctx.refresh())
        await a.until(lambda: own_sides(a) == {})
        await b.do(lambda ctx: ctx.refresh())
        assert own_sides(b) == pytest.approx(want_b)
        # `perpbot status` (its file is written after each tick) follows by the next tick
        await a.until(lambda: a.status()["positions"].get(BTC) is None)
        assert b.status()["positions"][BTC]["amount"] == pytest.approx(B_LONG - B_SHORT)
        summary_a = await a.stop()
        summary_b = await b.stop()
    assert {k: v["amount"] for k, v in summary_a["final_positions"].items()} == {}
    final_b = {k: v["amount"] for k, v in summary_b["final_positions"].items()}
    assert final_b == pytest.approx({**want_b, BTC: B_LONG - B_SHORT})
    assert sides(sim, key) == pytest.approx({"LONG": B_LONG, "SHORT": -B_SHORT})
