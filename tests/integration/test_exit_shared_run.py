"""A shared run's exit closes what the run holds, never the other holders' share.

A run with ``[strategy] share_symbols`` shares its account and symbol with others: its
position is its own fills. ``ctx.exit`` must close that, not the account's position: before,
it read the account's (the run's 0.01 plus another client's 0.02), sized its children by it,
and the risk gate (which judges a shared run's reduce-only room by its own position) refused
every one until the exit's timeout, leaving the run's own position open. The simulator's
account is the truth.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.integration.hedge_support import plain_ccxt, sides
from tests.integration.risk_support.bot import BTC, Bot, write_toml

OWN, OTHERS = 0.01, 0.02


@pytest.mark.parametrize("streams", [False, True], ids=["REST reconcile", "user stream"])
async def test_a_shared_runs_exit_closes_its_own_position_and_leaves_the_others(
    account: tuple[Any, str], tmp_path: Path, streams: bool
) -> None:
    sim, key = account
    secret = os.environ["PERPBOT_SIM_API_SECRET"]  # (the fixture put it there)
    plain_ccxt(sim, key, secret).create_order(BTC, "market", "buy", OTHERS)  # another holder
    toml = write_toml(
        tmp_path,
        sim.base_url,
        strategy={"share_symbols": True},
        exchange={"streams": streams, "reconcile_interval": 600},
        kill={"deadman": False},
        risk={"symbols": {BTC: {"max_position_notional": 1e6}}, "accept_no_limits": True},
    )
    async with Bot(toml) as bot:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", OWN))
        assert sides(sim, key) == pytest.approx({"BOTH": OWN + OTHERS})
        res = await bot.do(
            lambda ctx: ctx.exit(BTC, "market", timeout_s=10.0, pace_s=0.2), timeout=30
        )
        assert res is not None and res["left"] == 0.0, res
        assert res["from"] == pytest.approx(OWN)
        assert sides(sim, key) == pytest.approx({"BOTH": OTHERS})  # the others' share stays
        assert not bot.decisions("RISK_REDUCE_ONLY_EXCEEDS")
        await bot.do(lambda ctx: ctx.refresh())
        assert bot.runner.state.positions.get(BTC) is None  # the run holds nothing
