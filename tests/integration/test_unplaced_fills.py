"""Fills the run did not place are said, once each: a liquidation, an ADL, another client's.

A running bot (the real runner, ccxt over HTTP to the simulator) on streams and on REST
polling: the simulator liquidates its leveraged position (``sim.jump``), auto-deleverages
its short against a liquidated trader, or another ccxt client on the same account trades
its symbol. The simulator's own trades are the truth: each of them is one decision
(FILL_LIQUIDATION, FILL_ADL, FILL_FOREIGN) with its trade id, never two, though both the
user stream and a REST reconcile list it; it is in the run's events.jsonl and its status
file; the run's position is the simulator's; the ledger (the run's own fills and PnL) is
unchanged by it.
"""

from __future__ import annotations

import asyncio
import io
import os
import time
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from perpbot.alerts.rules import classify
from perpbot.audit.reader import iter_records
from perpbot.audit.verify import verify_segment
from perpbot.cli.status import bot_view
from perpbot.cli.status_view import bot_panel
from perpbot.engine.reconcile import REST_OVERLAP_MS
from perpbot.events import Decision
from perpbot.paths import logs_dir
from tests.integration.hedge_support import account_of, plain_ccxt
from tests.integration.kill_strategies.support import quiet_market
from tests.integration.risk_support.bot import BTC, BTC_ID, Bot, write_toml
from tests.integration.streams.support import started

pytestmark = pytest.mark.timeout(60)
MODES = pytest.mark.parametrize("streams", [True, False], ids=["user stream", "REST reconcile"])


def bot_toml(
    tmp_path: Path,
    url: str,
    streams: bool,
    *,
    audit: bool = False,
    protect: dict[str, Any] | None = None,
    **strategy: Any,
) -> Path:
    """The bot's strategy file: ``strategy`` keys into [strategy]; on streams the stream
    must say (and book) what it sees: the safety-net REST read is the test's own call."""
    return write_toml(
        tmp_path,
        url,
        exchange={"streams": streams, "reconcile_interval": 600},
        kill={"deadman": False},
        risk={"accept_no_limits": True},
        audit={"enabled": audit},
        strategy=strategy,
        **({"protect": protect} if protect else {}),
    )


def signed(bot: Bot, code: str) -> list[dict[str, Any]]:
    """The run's signed log, verified: its records of ``code``."""
    segment = logs_dir() / bot.runner.run_id
    result = verify_segment(segment, None)
    assert result.damage is None and result.closed and result.unsigned_tail == 0
    return [r for r in iter_records(segment) if r.get("code") == code]


def sim_trades(sim: Any, key: str, client_prefix: str) -> list[dict[str, Any]]:
    """The simulator's trades of ``key``'s orders whose client id starts so (the truth)."""
    orders = {
        o["orderId"]
        for o in sim.state()["orders"]
        if o["account"] == key and o["clientOrderId"].startswith(client_prefix)
    }
    return [t for t in sim.state()["trades"] if t["orderId"] in orders and t["account"] == key]


def sim_position(sim: Any, key: str) -> float:
    acct = account_of(sim, key)
    return sum(float(p["positionAmt"]) for p in acct["positions"] if p["symbol"] == BTC_ID)


async def said_once(bot: Bot, code: str, truth: list[dict[str, Any]], source: str) -> list[Any]:
    """Wait for ``code`` about every trade of ``truth``; one REST reconcile more (the
    stream's fills listed again) must say nothing twice."""
    ids = sorted(str(t["id"]) for t in truth)
    assert ids, "the simulator made no such trade"

    def said() -> list[str]:
        return sorted(d.data["trade_id"] for d in bot.decisions(code))

    await bot.until(lambda: said() == ids, timeout=10)
    reconciler = bot.runner.reconciler
    assert reconciler is not None
    await reconciler.reconcile(market=False)
    await reconciler.reconcile(market=False)
    decisions = bot.decisions(code)
    assert sorted(d.data["trade_id"] for d in decisions) == ids  # once each, never twice
    assert {d.data["source"] for d in decisions} == {source}
    logged = [e for e in bot.journal() if e.get("code") == code]
    assert sorted(e["data"]["trade_id"] for e in logged) == ids  # events.jsonl
    return decisions


async def until_status(bot: Bot, code: str, n: int) -> None:
    """The status file carries the decisions, and ``perpbot status`` draws them."""

    def shown() -> bool:
        section = bot.status()["snapshot"]["extras"].get("unplaced") or {}
        return section.get("counts", {}).get(code) == n and any(
            r["code"] == code for r in section.get("recent", [])
        )

    await bot.until(shown, timeout=10)
    view = bot_view(bot.status(), time.time(), None)
    console = Console(file=io.StringIO(), width=200)
    console.print(bot_panel(view, time.time()))
    drawn = console.file.getvalue()  # type: ignore[attr-defined]
    assert "not placed" in drawn and f"{code} {n}" in drawn


@MODES
async def test_a_liquidation_is_said_once_and_the_position_is_the_exchanges(
    account: tuple[Any, str], tmp_path: Path, streams: bool
) -> None:
    sim, key = account  # 10 000 USDT, 20x: 3 BTC at ~60 000 is liquidated ~5 % lower
    bot = await started(bot_toml(tmp_path, sim.base_url, streams, audit=True))
    try:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 3.0))
        await bot.do(lambda ctx: ctx.refresh())
        # every fill of the buy booked (on streams its order update, which the refresh waits
        # for, can come before its last trades: 3 BTC takes several levels of the book)
        ledger = bot.runner.ledger
        await bot.until(lambda: sum(f.amount for f in ledger.fills) == pytest.approx(3.0))
        own = [f.trade_id for f in ledger.fills]
        realized = ledger.realized_pnl
        sim.jump(BTC_ID, -6.0)
        (liq,) = [x for x in sim.state()["liquidations"] if x["account"] == key]
        truth = sim_trades(sim, key, "autoclose-")
        assert {t["orderId"] for t in truth} == {liq["orderId"]}
        said = await said_once(bot, "FILL_LIQUIDATION", truth, "stream" if streams else "rest")
        first = said[0]
        assert "LIQUIDATED" in first.sentence and BTC in first.sentence
        assert first.data["client_order_id"].startswith("autoclose-")
        assert first.data["order_id"] == str(liq["orderId"]) and first.data["side"] == "sell"
        assert sum(d.data["amount"] for d in said) == pytest.approx(3.0)
        assert classify(first) == "critical"  # alerts route it at the top severity
        await bot.until(lambda: not getattr(bot.runner.positions.get(BTC), "amount", 0.0))
        assert sim_position(sim, key) == 0.0
        # the run's own fills and their PnL are the ledger's, untouched by the liquidation
        assert [f.trade_id for f in bot.runner.ledger.fills] == own
        assert bot.runner.ledger.realized_pnl == realized
        await until_status(bot, "FILL_LIQUIDATION", len(truth))
    finally:
        await bot.stop()
    logged = signed(bot, "FILL_LIQUIDATION")
    assert sorted(r["data"]["trade_id"] for r in logged) == sorted(str(t["id"]) for t in truth)
    assert all(r["data"]["kind"] == "liquidation" and "dropped" not in r for r in logged)


@MODES
async def test_another_clients_fill_on_the_account_is_said_once(
    account: tuple[Any, str], tmp_path: Path, streams: bool
) -> None:
    sim, key = account
    other = plain_ccxt(sim, key, os.environ["PERPBOT_SIM_API_SECRET"])  # same account
    bot = await started(bot_toml(tmp_path, sim.base_url, streams))
    try:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.01))
        await bot.do(lambda ctx: ctx.refresh())
        own = [f.trade_id for f in bot.runner.ledger.fills]
        manual = other.create_order(BTC, "market", "sell", 0.004, params={
            "newClientOrderId": "by-hand-1"})  # fmt: skip
        truth = sim_trades(sim, key, "by-hand-1")
        said = await said_once(bot, "FILL_FOREIGN", truth, "stream" if streams else "rest")
        assert said[0].data["order_id"] == str(manual["id"])
        assert "did not place" in said[0].sentence and "by-hand-1" in said[0].sentence
        assert "manual order" in said[0].sentence
        assert bot.decisions("FILL_LIQUIDATION") == bot.decisions("FILL_ADL") == []
        await bot.until(
            lambda: (
                (p := bot.runner.positions.get(BTC)) is not None
                and p.amount == pytest.approx(sim_position(sim, key))
            )
        )
        assert sim_position(sim, key) == pytest.approx(0.006)
        assert [f.trade_id for f in bot.runner.ledger.fills] == own  # not booked as the run's
    finally:
        await bot.stop()


async def test_an_adl_of_the_bots_short_is_said_once(
    sim_factory: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sim = sim_factory(market=quiet_market(), insurance_fund=0.0)
    key, secret = sim.create_account(balance=100_000)
    loser, loser_secret = sim.create_account(balance=1000)
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    bot = await started(bot_toml(tmp_path, sim.base_url, True))
    try:
        await bot.do(lambda ctx: ctx.market_order(BTC, "sell", 0.5))
        plain_ccxt(sim, loser, loser_secret).create_order(BTC, "market", "buy", 0.3)
        sim.jump(BTC_ID, -8.0)  # the book far below the loser's bankruptcy, no fund: ADL
        (liq,) = sim.state()["liquidations"]
        assert liq["account"] == loser and liq["autoDeleveraged"] == "0.300"
        truth = sim_trades(sim, key, "adl_autoclose")
        said = await said_once(bot, "FILL_ADL", truth, "stream")
        assert said[0].data["side"] == "buy" and said[0].data["amount"] == pytest.approx(0.3)
        assert "auto-deleveraged" in said[0].sentence
        assert bot.decisions("FILL_LIQUIDATION") == []  # the loser's, not this account's
        await bot.until(
            lambda: (
                (p := bot.runner.positions.get(BTC)) is not None and p.amount == pytest.approx(-0.2)
            )
        )
        assert sim_position(sim, key) == pytest.approx(-0.2)
    finally:
        await bot.stop()


def test_the_default_alert_rules_route_the_codes() -> None:
    def d(code: str) -> Decision:
        return Decision("engine", "warn", code, "x", {"symbol": BTC})

    assert classify(d("FILL_LIQUIDATION")) == "critical"
    assert classify(d("FILL_ADL")) == "warning"
    assert classify(d("FILL_FOREIGN")) == "warning"


@MODES
async def test_a_shared_run_says_the_liquidation_not_the_other_holders_fills(
    account: tuple[Any, str], tmp_path: Path, streams: bool
) -> None:
    sim, key = account
    other = plain_ccxt(sim, key, os.environ["PERPBOT_SIM_API_SECRET"])  # another holder
    other.create_order(BTC, "market", "buy", 0.02, params={"newClientOrderId": "holder-1"})
    bot = await started(bot_toml(tmp_path, sim.base_url, streams, share_symbols=True))
    try:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 3.0))
        other.create_order(BTC, "market", "buy", 0.01, params={"newClientOrderId": "holder-2"})
        theirs = sim_trades(sim, key, "holder-2")
        reconciler = bot.runner.reconciler
        assert reconciler is not None and reconciler.unplaced is not None
        await reconciler.reconcile(market=False)
        await bot.until(lambda: reconciler.unplaced.others == len(theirs))  # met, once each
        assert bot.runner.ledger.book[BTC].amount == pytest.approx(3.0)  # its own share
        sim.jump(BTC_ID, -6.0)
        truth = sim_trades(sim, key, "autoclose-")
        said = await said_once(bot, "FILL_LIQUIDATION", truth, "stream" if streams else "rest")
        assert "share_symbols" in said[0].sentence
        assert sum(d.data["amount"] for d in said) == pytest.approx(3.03)  # the account's
        assert sim_position(sim, key) == 0.0
        # the account holds nothing: neither does the run (its book was 3.0)
        await bot.until(lambda: not getattr(bot.runner.positions.get(BTC), "amount", 0.0))
        assert bot.runner.ledger.book[BTC].amount == 0.0
        assert bot.decisions("FILL_FOREIGN") == []  # the other holders' fills: not said
        assert reconciler.unplaced.others == len(theirs)
        await until_status(bot, "FILL_LIQUIDATION", len(truth))
        assert bot.status()["snapshot"]["extras"]["unplaced"]["others"] == len(theirs)
    finally:
        await bot.stop()


async def test_a_fill_whose_order_lookup_failed_is_said_once_the_lookup_works(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """REST's trades carry no client id: the order is looked up. A lookup that fails keeps
    the trade for the next reconcile, even once the read window has moved past it."""
    sim, key = account
    other = plain_ccxt(sim, key, os.environ["PERPBOT_SIM_API_SECRET"])
    toml = write_toml(
        tmp_path,
        sim.base_url,
        exchange={"streams": False},
        kill={"deadman": False},
        risk={"accept_no_limits": True},
        retry={"max_attempts": 1},  # a failed lookup fails the read at once
    )
    bot = await started(toml)
    reconciler = bot.runner.reconciler
    assert reconciler is not None
    try:
        sim.set_faults({"errors": {"rate": 1.0, "paths": ["/fapi/v1/order"], "methods": ["GET"]}})
        other.create_order(BTC, "market", "buy", 0.002, params={"newClientOrderId": "by-hand-2"})
        first = sim_trades(sim, key, "by-hand-2")
        await reconciler.reconcile(market=False)
        assert sim.state()["counters"]["injected_errors"] >= 1
        assert {str(t["id"]) for t in first} <= set(reconciler.unresolved)
        # past the read window's overlap another trade: the next reads no longer list the first
        await asyncio.sleep(REST_OVERLAP_MS / 1000.0 + 0.3)
        other.create_order(BTC, "market", "buy", 0.002, params={"newClientOrderId": "by-hand-3"})
        await reconciler.reconcile(market=False)
        assert bot.decisions("FILL_FOREIGN") == []
        sim.set_faults({})
        truth = first + sim_trades(sim, key, "by-hand-3")
        await said_once(bot, "FILL_FOREIGN", truth, "rest")
        assert not reconciler.unresolved
    finally:
        await bot.stop()


async def test_two_reconciles_at_once_say_a_foreign_fill_once_and_the_run_goes_on(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    """Two REST reconciles running at once (here the test's own two, beside the run's tick)
    meet the same fill of an order the run did not place while its lookup (GET
    /fapi/v1/order) is slow: each finishes, the fill is said once, the run goes on. The
    second used to fail with a KeyError on the fill the first had said meanwhile; when it
    was the run's own reconcile, the run ended with an engine error (a loaded CI-like run
    hit it after a liquidation on a shared account)."""
    sim, key = account
    other = plain_ccxt(sim, key, os.environ["PERPBOT_SIM_API_SECRET"])  # same account
    bot = await started(bot_toml(tmp_path, sim.base_url, False))
    try:
        slow = {"rate": 1.0, "delay_ms": 300, "paths": ["/fapi/v1/order"], "methods": ["GET"]}
        sim.set_faults({"delayed_response": slow})  # every lookup of an order answers late
        manual = other.create_order(BTC, "market", "sell", 0.004, params={
            "newClientOrderId": "by-hand-2"})  # fmt: skip
        reconciler = bot.runner.reconciler
        assert reconciler is not None
        await asyncio.gather(reconciler.reconcile(market=False), reconciler.reconcile(market=False))
        sim.set_faults({})
        said = bot.decisions("FILL_FOREIGN")
        assert [d.data["order_id"] for d in said] == [str(manual["id"])]
        await asyncio.sleep(0.5)  # the run's own ticks go on reconciling
        assert bot.task is not None and not bot.task.done()
        assert len(bot.decisions("FILL_FOREIGN")) == 1
    finally:
        sim.set_faults({})
        await bot.stop()
