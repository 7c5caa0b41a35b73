"""A REST fill whose order cannot be looked up is said anyway, once, after a bounded retry.

REST's userTrades carry no client id, so the reconcile looks the order up (GET
/fapi/v1/order). A lookup the exchange keeps refusing (a persistent 503) is tried again at
each reconcile only until LOOKUP_TRIES have failed over the give-up time; a lookup answered
-2013 (the order does not exist, as Binance may answer for an order it does not serve) is not
tried again. Either way the account's liquidation and ADL orders are read once (forceOrders):
a liquidation is said as one; any other fill once as FILL_FOREIGN, its client id unknown, and
its order is never looked up again. The simulator's own trades and
counters are the truth.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from perpbot.engine.reconcile import LOOKUP_TRIES
from perpbot.engine.unplaced import UNKNOWN_CLIENT_ID
from tests.integration.hedge_support import plain_ccxt
from tests.integration.risk_support.bot import BTC, BTC_ID, write_toml
from tests.integration.streams.support import started
from tests.integration.test_unplaced_fills import said_once, sim_position, sim_trades

pytestmark = pytest.mark.timeout(60)
GIVE_UP_S = 1.5  # the run's give-up time, shortened for the test (30 s by default)


def rest_toml(tmp_path: Path, url: str) -> Path:
    return write_toml(
        tmp_path,
        url,
        exchange={"streams": False},
        kill={"deadman": False},
        risk={"accept_no_limits": True},
        retry={"max_attempts": 1},  # a failed lookup fails the read at once
    )


def lookups(sim: Any) -> int:
    return int(sim.state()["counters"]["injected_errors"])


async def test_a_lookup_that_keeps_failing_is_given_up_and_the_fill_said_once(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    other = plain_ccxt(sim, key, os.environ["PERPBOT_SIM_API_SECRET"])
    bot = await started(rest_toml(tmp_path, sim.base_url))
    reconciler = bot.runner.reconciler
    assert reconciler is not None
    reconciler.lookup_give_up_s = GIVE_UP_S
    try:
        sim.set_faults({"errors": {"rate": 1.0, "paths": ["/fapi/v1/order"], "methods": ["GET"]}})
        other.create_order(BTC, "market", "buy", 0.002, params={"newClientOrderId": "by-hand-5"})
        truth = sim_trades(sim, key, "by-hand-5")
        await reconciler.reconcile(market=False)
        assert lookups(sim) >= 1 and bot.decisions("FILL_FOREIGN") == []  # not yet given up
        # the run's own reconciles (each tick) retry the lookup until the bound
        said = await said_once(bot, "FILL_FOREIGN", truth, "rest")
        assert lookups(sim) >= LOOKUP_TRIES
        first = said[0]
        assert first.data["client_order_id"] == UNKNOWN_CLIENT_ID
        assert first.data["order_id"] == str(truth[0]["orderId"])
        assert "would not name the order" in first.sentence and "liquidation" in first.sentence
        assert not reconciler.unresolved and not reconciler.lookup_failures
        tried = lookups(sim)
        await reconciler.reconcile(market=False)
        await reconciler.reconcile(market=False)
        assert lookups(sim) == tried  # never looked up again
        assert bot.runner.ledger.fills == []  # not booked as the run's
        await bot.until(
            lambda: (
                getattr(bot.runner.positions.get(BTC), "amount", 0.0)
                == pytest.approx(sim_position(sim, key))
            )
        )
    finally:
        await bot.stop()


async def test_an_order_the_exchange_says_does_not_exist_is_said_at_once(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """A liquidation whose order lookup answers -2013: one lookup, one read of the account's
    liquidation orders (forceOrders) that names it; each trade said once as the liquidation
    it is; the run's position is the exchange's (flat), its own fills untouched."""
    sim, key = account
    bot = await started(rest_toml(tmp_path, sim.base_url))
    try:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 3.0))
        await bot.do(lambda ctx: ctx.refresh())
        own = [f.trade_id for f in bot.runner.ledger.fills]
        sim.set_faults({"order_not_found": {"rate": 1.0}})
        sim.jump(BTC_ID, -6.0)
        (liq,) = [x for x in sim.state()["liquidations"] if x["account"] == key]
        truth = sim_trades(sim, key, "autoclose-")
        said = await said_once(bot, "FILL_LIQUIDATION", truth, "rest")
        assert lookups(sim) == 1  # one lookup of the one order, answered -2013
        assert {d.data["order_id"] for d in said} == {str(liq["orderId"])}
        assert all(d.data["client_order_id"].startswith("autoclose-") for d in said)
        assert sum(d.data["amount"] for d in said) == pytest.approx(3.0)
        assert bot.decisions("FILL_FOREIGN") == []
        await bot.until(lambda: not getattr(bot.runner.positions.get(BTC), "amount", 0.0))
        assert sim_position(sim, key) == 0.0
        assert [f.trade_id for f in bot.runner.ledger.fills] == own
    finally:
        await bot.stop()


async def test_not_found_and_not_a_liquidation_is_said_foreign_client_id_unknown(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """Another client's fill whose lookup answers -2013: forceOrders does not list it, so it
    is said once as FILL_FOREIGN, its client id unknown; neither read is made again."""
    sim, key = account
    other = plain_ccxt(sim, key, os.environ["PERPBOT_SIM_API_SECRET"])
    bot = await started(rest_toml(tmp_path, sim.base_url))
    reconciler = bot.runner.reconciler
    assert reconciler is not None
    try:
        sim.set_faults({"order_not_found": {"rate": 1.0}})
        other.create_order(BTC, "market", "sell", 0.003, params={"newClientOrderId": "by-hand-6"})
        truth = sim_trades(sim, key, "by-hand-6")
        said = await said_once(bot, "FILL_FOREIGN", truth, "rest")
        assert said[0].data["client_order_id"] == UNKNOWN_CLIENT_ID
        assert lookups(sim) == 1
        await reconciler.reconcile(market=False)
        await reconciler.reconcile(market=False)
        assert lookups(sim) == 1  # the order is not looked up again
        assert bot.runner.ledger.fills == []  # not booked as the run's
    finally:
        await bot.stop()
