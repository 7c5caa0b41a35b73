"""A restart meets what the dead run left: its position, a fill made while no run watched,
its stops (the simulator's own state is the truth).

- a bot with a position, resting orders and a ``[protect]`` stop is SIGKILLed; one of its
  orders fills while it is down; the restarted run sees the real position from its first
  tick (ctx.position, `perpbot status`, the risk gate's reduce-only room), says the fill
  made while it was down as a fill of an earlier run's order, and keeps the dead run's
  closePosition stop as the position's stop: exactly one stands, before and after its stop;
- the dead run's other conditional orders of this strategy are cancelled at the restart
  (``leftover_orders = "cancel"``) or adopted (``"adopt"``); another strategy's stay;
- an adopted stop is the keeper's like its own: cancelled once the position is flat, and a
  clean stop then leaves no stop of this strategy behind.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from perpbot.client.loopback import configure_loopback
from perpbot.client.orders import client_order_id
from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    HERE,
    Bot,
    open_orders_of,
    orders_of,
    position_of,
    quiet_market,
    start_bot,
    wait_until,
    write_strategy,
)

BTC, BTC_ID = "BTC/USDT:USDT", "BTCUSDT"
PROTECT = {"enabled": True, "stop_pct": 5.0, "check_interval_s": 0.2}


def _stops(sim: Any, key: str) -> list[dict[str, Any]]:
    """The account's standing STOP_MARKET closePosition orders (the simulator's)."""
    return [
        a
        for a in sim.state()["algo_orders"]
        if a["account"] == key
        and a["algoStatus"] == "NEW"
        and a["orderType"] == "STOP_MARKET"
        and a["closePosition"]
    ]


def _algo(sim: Any, key: str) -> dict[str, dict[str, Any]]:
    return {a["clientAlgoId"]: a for a in sim.state()["algo_orders"] if a["account"] == key}


def _toml(tmp_path: Path, url: str, name: str, **kw: Any) -> Path:
    return write_strategy(
        tmp_path,
        url,
        strategy={"name": "hang", "symbols": [BTC], "tick_interval": 0.2, **kw.pop("strategy", {})},
        kill={"deadman_countdown_s": 30},
        extra={"protect": PROTECT},
        name=name,
        **kw,
    )


def _start(bots: list[Bot], toml: Path, tmp_path: Path, creds: tuple[str, str], tag: str) -> Bot:
    bot = start_bot(toml, tmp_path, creds, tag=tag)
    bots.append(bot)
    return bot


def test_a_restart_sees_the_real_position_says_the_fill_made_while_down_and_keeps_one_stop(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    key = creds[0]
    first = _start(
        bots,
        _toml(
            tmp_path, sim.base_url, "first.toml",
            params={"mode": "idle", "orders_per_symbol": 2, "open_position": 0.01},
        ),
        tmp_path, creds, "first",
    )  # fmt: skip
    wait_until(lambda: len(open_orders_of(sim.state(), key)) == 2 and _stops(sim, key), timeout=30)
    [stop] = _stops(sim, key)
    buy = next(o for o in open_orders_of(sim.state(), key) if o["side"] == "BUY")
    first.signal(signal.SIGKILL)
    first.proc.wait(10)

    sim.jump(BTC_ID, -3.5)  # the dead run's resting buy (3 % under the mid) fills
    wait_until(lambda: position_of(sim.state(), key, BTC_ID) > 0.01, timeout=10)
    held = position_of(sim.state(), key, BTC_ID)
    by_cid = {o["clientOrderId"]: o for o in orders_of(sim.state(), key)}
    assert by_cid[buy["clientOrderId"]]["status"] == "FILLED"

    toml = _toml(
        tmp_path, sim.base_url, "again.toml",
        strategy={"file": str(HERE / "restart_probe.py")},
    )  # fmt: skip
    again = _start(bots, toml, tmp_path, creds, "again")
    wait_until(lambda: "probe reduce_only all" in again.out.read_text(), timeout=30)
    out = again.out.read_text()
    # its first tick: ctx.position is the exchange's, the fill made while down included
    assert f"probe position {BTC} {held:g}" in out, out
    # the risk gate's reduce-only room follows the real position
    over = round(held + 0.001, 3)  # one step (0.001) more than the position
    assert f"probe reduce_only over {over:g} refused RISK_REDUCE_ONLY_EXCEEDS" in out, out
    assert f"probe reduce_only all {held:g} accepted" in out, out
    # the fill made while it was down is said, as the earlier run's order's
    said = [ln for ln in out.splitlines() if "FILL_FOREIGN" in ln]  # the first reconcile's
    assert len(said) == 1, said
    assert buy["clientOrderId"] in said[0] and "earlier run of this strategy" in said[0]
    assert "before this run started" in said[0]
    # `perpbot status`: the real position
    status = json.loads(run_cli("status", "--json").stdout)
    [bot] = [b for b in status["bots"] if b["state"] == "running"]
    assert [(p["symbol"], p["amount"]) for p in bot["positions"]] == [(BTC, pytest.approx(held))]
    # exactly one stop: the dead run's, adopted, covering the whole (real) position
    wait_until(lambda: "PROTECT_ADOPTED" in again.out.read_text(), timeout=10)
    now = _stops(sim, key)
    assert [s["algoId"] for s in now] == [stop["algoId"]] and now[0]["side"] == "SELL"
    assert "START_LEFTOVER_STOPS_ADOPTED" in again.out.read_text()

    again.signal(signal.SIGTERM)
    code, _out, err = again.finish(30)
    assert code == 0, err
    assert "Traceback" not in err
    state = sim.state()
    assert not open_orders_of(state, key)
    assert [s["algoId"] for s in _stops(sim, key)] == [stop["algoId"]]  # one left, no twin
    assert position_of(state, key, BTC_ID) == pytest.approx(held)
    sim.jump(BTC_ID, -4.0)  # through the stop (5 % under the first entry): it closes it all
    wait_until(lambda: position_of(sim.state(), key, BTC_ID) == 0.0, timeout=10)


def _place_algo(ex: Any, cid: str, **params: Any) -> None:
    ex.fapiPrivatePostAlgoOrder(
        {"algoType": "CONDITIONAL", "symbol": BTC_ID, "side": "SELL", "type": "STOP_MARKET",
         "workingType": "MARK_PRICE", "clientAlgoId": cid, **params}
    )  # fmt: skip


def _dead_run_left(sim: Any) -> tuple[tuple[str, str], Any, str, str, str]:
    """A long 0.01 left by a dead run of strategy `hang` with its protect stop
    (closePosition), its reduce-only stop for 0.005, and a stop of strategy `other`:
    (creds, ccxt exchange, and the three client ids)."""
    creds = sim.create_account()
    ex = ccxt.binanceusdm({"apiKey": creds[0], "secret": creds[1], "enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    ex.load_markets()
    ex.create_order(BTC, "market", "buy", 0.01)
    mark = float(ex.fetch_funding_rate(BTC)["markPrice"])
    protect = client_order_id("dead-run", "hang", 0)
    reduce = client_order_id("dead-run", "hang", 1)
    theirs = client_order_id("other-run", "other", 0)
    _place_algo(ex, protect, triggerPrice=f"{mark * 0.95:.1f}", closePosition="true")
    _place_algo(ex, reduce, triggerPrice=f"{mark * 0.9:.1f}", quantity="0.005", reduceOnly="true")
    _place_algo(ex, theirs, triggerPrice=f"{mark * 0.9:.1f}", quantity="0.002", reduceOnly="true")
    return creds, ex, protect, reduce, theirs


@pytest.mark.parametrize("leftover", ["cancel", "adopt"])
def test_the_dead_runs_conditional_orders_are_cancelled_or_adopted_never_another_strategys(
    sim_factory: Any, tmp_path: Path, bots: list[Bot], leftover: str
) -> None:
    sim = sim_factory(market=quiet_market())
    creds, _ex, protect, reduce, theirs = _dead_run_left(sim)
    key = creds[0]
    toml = _toml(
        tmp_path, sim.base_url, f"{leftover}.toml",
        params={"mode": "idle", "orders_per_symbol": 0},
        strategy={"leftover_orders": leftover},
    )  # fmt: skip
    bot = _start(bots, toml, tmp_path, creds, leftover)
    wait_until(lambda: "PROTECT_ADOPTED" in bot.out.read_text(), timeout=30)
    algo = _algo(sim, key)
    assert [s["clientAlgoId"] for s in _stops(sim, key)] == [protect]  # none placed beside it
    assert algo[theirs]["algoStatus"] == "NEW"  # another strategy's: untouched
    expected = "CANCELED" if leftover == "cancel" else "NEW"
    assert algo[reduce]["algoStatus"] == expected
    code = "CANCELLED" if leftover == "cancel" else "ADOPTED"
    assert f"START_LEFTOVER_STOPS_{code}" in bot.out.read_text()

    bot.signal(signal.SIGTERM)
    exit_code, _out, err = bot.finish(30)
    assert exit_code == 0, err
    assert "Traceback" not in err
    algo = _algo(sim, key)
    assert [s["clientAlgoId"] for s in _stops(sim, key)] == [protect]
    assert algo[theirs]["algoStatus"] == "NEW" and algo[reduce]["algoStatus"] == expected
    assert len([a for a in algo.values() if a["algoStatus"] == "NEW"]) == (
        2 if leftover == "cancel" else 3
    )


def _adopting(
    sim_factory: Any, tmp_path: Path, bots: list[Bot], name: str
) -> tuple[Any, str, Any, str, str, Bot]:
    """A dead run's leftovers (``_dead_run_left``) and an idle bot of the strategy that has
    adopted its protect stop: (sim, key, ccxt exchange, protect and other strategy's client
    ids, the bot)."""
    sim = sim_factory(market=quiet_market())
    creds, ex, protect, _reduce, theirs = _dead_run_left(sim)
    toml = _toml(
        tmp_path, sim.base_url, f"{name}.toml", params={"mode": "idle", "orders_per_symbol": 0}
    )
    bot = _start(bots, toml, tmp_path, creds, name)
    wait_until(lambda: "PROTECT_ADOPTED" in bot.out.read_text(), timeout=30)
    return sim, creds[0], ex, protect, theirs, bot


def test_an_adopted_stop_is_cancelled_once_flat_and_a_clean_stop_leaves_none(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, key, ex, protect, theirs, bot = _adopting(sim_factory, tmp_path, bots, "flat")
    ex.create_order(BTC, "market", "sell", 0.01, None, {"reduceOnly": True})  # closed by hand
    wait_until(lambda: _algo(sim, key)[protect]["algoStatus"] == "CANCELED", timeout=10)
    bot.signal(signal.SIGTERM)
    code, _out, err = bot.finish(30)
    assert code == 0, err
    assert not _stops(sim, key)  # nothing of this strategy left behind
    assert [c for c, a in _algo(sim, key).items() if a["algoStatus"] == "NEW"] == [theirs]


def test_an_adopted_stop_that_fires_is_the_runs_fill_not_a_foreign_one(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    """The dead run's protect stop, adopted at the restart, fires while the new run trades:
    its fill is the run's (booked with its fee and realized P&L, in the run's summary), not
    a fill of an order no run placed (FILL_FOREIGN, left out of the run's figures)."""
    sim, key, _ex, protect, _theirs, bot = _adopting(sim_factory, tmp_path, bots, "fires")
    sim.jump(BTC_ID, -6.0)  # through the adopted stop (5 % under the entry) only
    wait_until(lambda: position_of(sim.state(), key, BTC_ID) == 0.0, timeout=10)
    assert _algo(sim, key)[protect]["algoStatus"] != "NEW"  # it fired
    sold = f"fill {BTC} sell 0.01 @ "
    wait_until(lambda: sold in bot.out.read_text(), timeout=10)
    bot.signal(signal.SIGTERM)
    code, out, err = bot.finish(30)
    assert code == 0, err
    assert "FILL_FOREIGN" not in out, out
    assert len([ln for ln in out.splitlines() if ln.startswith(sold)]) == 1, out
    assert "orders: placed 1, filled 1" in out and "fills: 1 " in out, out
    assert "final position: flat" in out
