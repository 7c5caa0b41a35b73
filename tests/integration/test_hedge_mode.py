"""Hedge mode (Binance ``dualSidePosition``): a LONG and a SHORT position per symbol.

Over real HTTP against the simulator, whose own state (GET /__sim/state) is the truth:

- a run on a hedge-mode account opens a LONG and a SHORT side by side, sees each side
  (``ctx.position(symbol, position_side=...)``), and an order without positionSide, or with
  reduceOnly, is refused before the gates with one code (POSITION_SIDE);
- the risk gate counts both sides: a SHORT that would take |LONG| + |SHORT| over
  max_position_notional is refused although it would shrink the net position;
- ``perpbot kill --level flatten`` leaves both sides at 0 (closing orders by positionSide,
  no reduceOnly) and the run ends;
- a reduce-only grant allows a SELL LONG close and refuses a SELL SHORT open;
- share_symbols and liquidation_band_pct, once refused at start, run (their own tests:
  test_hedge_shared.py, test_hedge_liquidation.py).

Binance: New Order (positionSide "must be sent in Hedge Mode", reduceOnly "cannot be sent in
Hedge Mode"), Change Position Mode, Get Current Position Mode:
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Change-Position-Mode
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from perpbot.client.request import Request
from perpbot.client.validate import OrderRefused, wire_order
from perpbot.engine.context import Context
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
from tests.integration.risk_support.bot import BTC, Bot, quiet, write_toml

__all__ = ["hedge"]  # the fixture (tests/integration/hedge_support.py)


async def test_a_side_opened_and_closed_in_one_tick_is_closed(
    hedge: tuple[Any, str, str], tmp_path: Path
) -> None:
    """The exit runs right after the order that opened the side, in the same tick (no
    reconcile between): its children are judged against the position it reads, so the side
    closes; before, the risk gate's view still had the side flat and refused every child
    (RISK_REDUCE_ONLY_NO_POSITION) in a tight loop until the exit's timeout."""
    sim, key, _ = hedge
    toml = write_toml(
        tmp_path, sim.base_url, exchange={"streams": False}, risk={"accept_no_limits": True}
    )
    async with Bot(toml) as bot:

        def open_and_close(ctx: Context) -> Any:
            ctx.market_order(BTC, "sell", SHORT_QTY, position_side="SHORT")
            return ctx.exit(BTC, "market", position_side="SHORT", timeout_s=10.0, pace_s=0.2)

        res = await bot.do(open_and_close, 30)
        assert res is not None and res["left"] == 0.0, res
        assert sides(sim, key) == {}  # the simulator's truth: the side is closed
        assert not bot.decisions("RISK_REDUCE_ONLY_NO_POSITION")


@pytest.mark.parametrize("streams", [False, True], ids=["REST reconcile", "user stream"])
async def test_a_hedge_bot_holds_both_sides_the_risk_gate_counts_both_and_flatten_closes_both(
    hedge: tuple[Any, str, str], tmp_path: Path, streams: bool
) -> None:
    sim, key, _ = hedge
    mid = float(sim.state()["markets"]["BTCUSDT"]["mark"])
    cap = 2.0 * LONG_QTY * mid  # LONG 0.01 + SHORT 0.005 fit; SHORT 0.015 does not
    toml = write_toml(
        tmp_path,
        sim.base_url,
        exchange={"streams": streams, "reconcile_interval": 600},
        risk={"symbols": {BTC: {"max_position_notional": cap}}, "accept_no_limits": True},
    )
    async with Bot(toml) as bot:
        assert (bot.runner.feed is not None) is streams  # positions from the user stream
        assert "BTCUSDT" in account_of(sim, key)["countdowns"]  # the dead-man is armed
        await bot.do(
            lambda ctx: fresh(ctx).market_order(BTC, "buy", LONG_QTY, position_side="LONG")
        )
        await bot.do(
            lambda ctx: fresh(ctx).market_order(BTC, "sell", SHORT_QTY, position_side="SHORT")
        )
        assert sides(sim, key) == {"LONG": LONG_QTY, "SHORT": -SHORT_QTY}
        if streams:  # each side arrives on the user stream, no REST read of positions
            feed, state = bot.runner.feed, bot.runner.state
            want = {f"{BTC}|LONG": LONG_QTY, f"{BTC}|SHORT": -SHORT_QTY}
            await bot.until(lambda: {k: p.amount for k, p in state.legs.items()} == want)
            assert feed is not None and feed.counters["reconciles"] == 1  # the start-up one
            assert state.positions[BTC].amount == pytest.approx(LONG_QTY - SHORT_QTY)
        await bot.do(lambda ctx: ctx.refresh())
        long_, short, net = await bot.do(
            lambda ctx: (
                ctx.position(BTC, position_side="LONG"),
                ctx.position(BTC, position_side="SHORT"),
                ctx.position(BTC),
            )
        )
        assert (long_.amount, long_.position_side) == (LONG_QTY, "LONG")
        assert (short.amount, short.position_side) == (-SHORT_QTY, "SHORT")
        assert net.amount == pytest.approx(LONG_QTY - SHORT_QTY)

        # the boundary: hedge mode needs a position side, and takes no reduceOnly
        r = await rejected(bot, lambda ctx: fresh(ctx).market_order(BTC, "buy", 0.001))
        assert r.code == "POSITION_SIDE" and "hedge mode" in r.sentence
        r = await rejected(
            bot,
            lambda ctx: fresh(ctx).market_order(
                BTC, "sell", 0.001, reduce_only=True, position_side="LONG"
            ),
        )
        assert r.code == "POSITION_SIDE" and "reduceOnly" in r.sentence

        # both sides count: 0.01 more SHORT makes |0.01| + |0.015| > cap, although the net
        # position would go from +0.005 to -0.005 (one-way arithmetic would let it pass)
        r = await rejected(
            bot, lambda ctx: fresh(ctx).market_order(BTC, "sell", 0.01, position_side="SHORT")
        )
        assert r.code == "RISK_MAX_POSITION_NOTIONAL", r.sentence
        # a SELL LONG close of part of the long passes (it shrinks the gross)
        await bot.do(
            lambda ctx: fresh(ctx).reduce_only_order(BTC, "sell", 0.004, position_side="LONG")
        )
        assert sides(sim, key) == {"LONG": pytest.approx(0.006), "SHORT": -SHORT_QTY}
        # a close may not exceed its side (the reduce-only room of the LONG side)
        r = await rejected(
            bot, lambda ctx: fresh(ctx).reduce_only_order(BTC, "sell", 0.01, position_side="LONG")
        )
        assert r.code == "RISK_REDUCE_ONLY_EXCEEDS", r.sentence
        orders = sim.state()["orders"]
        assert all(o["positionSide"] in ("LONG", "SHORT") for o in orders)
        assert not any(o["reduceOnly"] for o in orders)

        before = len(orders)
        killed = await asyncio.to_thread(run_cli, "kill", "--level", "flatten", "--wait", "30")
        assert killed.returncode == 0, killed.stdout + killed.stderr
        summary = await bot.stop()
    assert not any(sides(sim, key).values())  # the simulator lists no position left
    assert account_of(sim, key)["countdowns"] == {}  # and the dead-man was disarmed
    placed = sim.state()["orders"][before:]  # the kill switch's: a close per side
    filled = {(o["side"], o["positionSide"]) for o in placed if o["status"] == "FILLED"}
    assert filled == {("SELL", "LONG"), ("BUY", "SHORT")}, placed
    assert not any(o["reduceOnly"] for o in placed)
    kill = summary["kill"]
    assert summary["exit_code"] == 4 and kill["level"] == "flatten", summary
    closed = {r["position_side"]: (r["from"], r["to"]) for r in kill["closed"]}
    assert closed == {"LONG": (pytest.approx(0.006), 0.0), "SHORT": (-SHORT_QTY, 0.0)}
    assert all(
        o["position_side"] == r["position_side"] for r in kill["closed"] for o in r["orders"]
    )
    # the dead-man countdown armed on the hedge account, and the clean stop disarmed it
    assert summary["deadman"]["armed"] == [BTC] and summary["deadman"]["disarmed"] is True


async def test_an_exit_closes_one_side_and_a_conditional_order_needs_its_side(
    hedge: tuple[Any, str, str], tmp_path: Path
) -> None:
    sim, key, _ = hedge
    toml = write_toml(
        tmp_path, sim.base_url, exchange={"streams": False}, risk={"accept_no_limits": True}
    )
    async with Bot(toml) as bot:
        await bot.do(
            lambda ctx: fresh(ctx).market_order(BTC, "buy", LONG_QTY, position_side="LONG")
        )
        await bot.do(
            lambda ctx: fresh(ctx).market_order(BTC, "sell", SHORT_QTY, position_side="SHORT")
        )
        r = await rejected(
            bot, lambda ctx: ctx.reduce_only_order(BTC, "buy", 0.001, position_side="LONG")
        )
        assert r.code == "POSITION_SIDE" and "would open the LONG side" in r.sentence
        res = await bot.do(lambda ctx: ctx.exit(BTC, "market", position_side="SHORT"), 30)
        assert res is not None and res["left"] == 0.0, res
        assert sides(sim, key) == {"LONG": LONG_QTY}  # the LONG side is untouched
        assert await bot.do(lambda ctx: ctx.exit(BTC, "market", position_side="SHORT")) is None
        # on_position_change: each side's changes, besides the net's
        told = bot.strategy.position_changes  # type: ignore[attr-defined]

        def side_changes() -> list[tuple[str | None, float]]:
            return [(c.position_side, c.after) for c in told if c.position_side]

        await bot.until(lambda: ("SHORT", 0.0) in side_changes())
        assert ("LONG", LONG_QTY) in side_changes() and ("SHORT", -SHORT_QTY) in side_changes()
        assert all(c.symbol == BTC for c in told)
        # a batch and a cancel-and-replace keep the side
        mid = await bot.do(lambda ctx: ctx.mid(BTC))
        batch = [{"symbol": BTC, "side": "buy", "amount": 0.002, "price": round(mid * 0.97, 1),
                  "position_side": "LONG"}]  # fmt: skip
        (resting,) = await bot.do(lambda ctx: fresh(ctx).place_orders(batch))
        moved = await bot.do(lambda ctx: ctx.modify_order(resting, price=round(mid * 0.96, 1)))
        by_cid = {o["clientOrderId"]: o for o in sim.state()["orders"]}
        assert by_cid[resting.client_order_id]["positionSide"] == "LONG"
        assert by_cid[moved.client_order_id]["positionSide"] == "LONG"
        assert by_cid[moved.client_order_id]["status"] == "NEW"
        before = len(sim.state()["orders"])
        r = await rejected(bot, lambda ctx: ctx.stop_market_order(BTC, "sell", 50000.0, LONG_QTY))
        assert r.code == "POSITION_SIDE" and "hedge-mode" in r.sentence
        assert len(sim.state()["orders"]) == before
        summary = await bot.stop()
    # the summary names the side left open (and the net it makes)
    final = {k: v["amount"] for k, v in summary["final_positions"].items()}
    assert final == {f"{BTC}|LONG": LONG_QTY, BTC: LONG_QTY}, final
    assert sides(sim, key) == {"LONG": LONG_QTY}


def test_share_symbols_and_the_liquidation_band_run_on_a_hedge_account(
    hedge: tuple[Any, str, str], tmp_path: Path
) -> None:
    """Both were refused at start on a hedge-mode account; now a run with both starts, runs
    and stops cleanly (test_hedge_shared.py and test_hedge_liquidation.py: what they do)."""
    sim, key, secret = hedge
    sections = {"strategy": {"share_symbols": True}, "risk": {"liquidation_band_pct": 20.0}}
    toml = write_toml(tmp_path, sim.base_url, **sections)
    env = {"PERPBOT_SIM_API_KEY": key, "PERPBOT_SIM_API_SECRET": secret}

    ran = run_cli("run", str(toml), "--duration", "2", env=env)
    assert ran.returncode == 0, ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout and secret not in ran.stderr + ran.stdout
    ex = plain_ccxt(sim, key, secret)
    assert ex.fapiPrivateGetPositionSideDual() == {"dualSidePosition": True}  # left as it was


@pytest.mark.parametrize(
    ("hedged", "params", "why"),
    [
        (None, {"positionSide": "LONG"}, "not known to be in hedge mode"),
        (False, {"positionSide": "SHORT"}, "one-way mode"),
        (True, {}, "must name positionSide LONG or SHORT"),
        (True, {"positionSide": "BOTH"}, "must name positionSide LONG or SHORT"),
        (True, {"positionSide": "LONG", "reduceOnly": True}, "reduceOnly is not sent"),
        (True, {"positionSide": "long "}, "expected LONG or SHORT"),
        (True, {"positionSide": 1}, "expected LONG or SHORT"),
        (True, {"positionSide": "short"}, "expected LONG or SHORT"),
    ],
)
def test_a_position_side_that_does_not_match_the_mode_is_refused_with_one_code(
    hedged: bool | None, params: dict[str, Any], why: str
) -> None:
    raw = Request("create_order", (BTC, "market", "sell", 0.1, None, params), command="run")
    with pytest.raises(OrderRefused) as info:
        wire_order(raw, hedged=hedged)
    assert info.value.code == "POSITION_SIDE"
    assert why in info.value.message


def test_the_position_side_the_mode_takes_passes_the_boundary() -> None:
    for hedged, params, sent in [
        (False, {}, None),
        (False, {"positionSide": "BOTH"}, "BOTH"),
        (True, {"positionSide": "LONG"}, "LONG"),
        (True, {"positionSide": "SHORT"}, "SHORT"),
    ]:
        raw = Request("create_order", (BTC, "market", "sell", 0.1, None, params), command="run")
        wire = wire_order(raw, hedged=hedged)
        assert wire.position_side == sent
        assert wire.closes == (sent == "LONG")  # a SELL LONG closes; a SELL SHORT opens
    # ccxt's own hedge switch would rewrite the order after the guards: refused
    raw = Request("create_order", (BTC, "market", "sell", 0.1, None, {"hedged": True}))
    with pytest.raises(OrderRefused) as info:
        wire_order(raw, hedged=True)
    assert info.value.code == "BAD_PARAM"


def _hedged_equal_sides(sim: Any) -> tuple[str, str]:
    """A hedge-mode account holding LONG 0.01 and SHORT 0.01 BTC: net nothing, gross 0.02."""
    key, secret = sim.create_account()
    ex = plain_ccxt(sim, key, secret)
    ex.fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    ex.load_markets()
    ex.create_order(BTC, "market", "buy", 0.01, None, {"positionSide": "LONG"})
    ex.create_order(BTC, "market", "sell", 0.01, None, {"positionSide": "SHORT"})
    assert sides(sim, key) == {"LONG": 0.01, "SHORT": -0.01}
    return key, secret


@pytest.mark.parametrize(
    "command",
    [
        ("flatten", "--policy", "slices", "--timeout", "60", "--json"),
        ("kill", "--level", "flatten", "--direct", "--wait", "0", "--json"),
    ],
    ids=["perpbot flatten (exit policy)", "kill --direct --level flatten (capped)"],
)
def test_a_command_without_a_run_closes_both_sides_even_when_they_net_to_nothing(
    sim_factory: Any, command: tuple[str, ...]
) -> None:
    sim = sim_factory(market=quiet())
    key, secret = _hedged_equal_sides(sim)
    before = len(sim.state()["orders"])
    env = {"PERPBOT_SIM_API_KEY": key, "PERPBOT_SIM_API_SECRET": secret}

    result = run_cli(*command, "--url", sim.base_url, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert not any(sides(sim, key).values())  # the simulator lists no position left
    placed = sim.state()["orders"][before:]
    assert placed and all(
        (o["side"], o["positionSide"]) in {("SELL", "LONG"), ("BUY", "SHORT")} for o in placed
    ), placed
    assert not any(o["reduceOnly"] for o in placed)
    doc = json.loads(result.stdout)
    closed = doc["direct"]["closed"] if "direct" in doc else doc["closed"]
    assert {c["position_side"]: c["to"] for c in closed} == {"LONG": 0.0, "SHORT": 0.0}
