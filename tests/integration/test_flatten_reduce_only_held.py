"""`perpbot flatten` (without --cancel-orders) and `perpbot kill --level flatten` against a
resting full-size reduce-only take-profit (xLydianSoftware/Qubx#386).

The take-profit is placed by hand (a plain ccxt client on the same account), so no run's
own cancel removes it first: the exchange answers every reduce-only close -4118 (or a run's
risk gate refuses it first) until it goes. Both commands cancel the reduce-only orders that
hold the position (they act for the account's owner: such an order could only close the same
position, and the exchange expires it once flat), say so, and end flat. Other open orders
stay. An algo take-profit (closePosition) holds nothing; the flatten cancels it once the
symbol is flat (docs/kill.md). The simulator's orders and positions are the truth.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.integration.hedge_support import plain_ccxt
from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    open_orders_of,
    orders_of,
    position_of,
    sim_env,
    start_bot,
    wait_until,
)

BTC = "BTC/USDT:USDT"


def _hand_orders(sim: Any, creds: tuple[str, str], long: float) -> dict[str, str]:
    """A long (if ``long``), a full-size reduce-only take-profit limit, a plain bid and a
    closePosition algo take-profit, all by hand; their client ids."""
    ex = plain_ccxt(sim, *creds)
    ex.load_markets()
    if long:
        ex.create_order(BTC, "market", "buy", long)
    held = float(position_of(sim.state(), creds[0], "BTCUSDT"))
    mark = float(ex.fetch_ticker(BTC)["last"])
    ex.create_order(BTC, "limit", "sell", held, round(mark * 1.02, 1),
                    {"reduceOnly": True, "clientOrderId": "hand-tp"})  # fmt: skip
    ex.create_order(BTC, "limit", "buy", 0.002, round(mark * 0.97, 1), {"clientOrderId": "bid"})
    ex.fapiPrivatePostAlgoOrder(
        {"algoType": "CONDITIONAL", "symbol": "BTCUSDT", "side": "SELL",
         "type": "TAKE_PROFIT_MARKET", "triggerPrice": str(round(mark * 1.05, 1)),
         "closePosition": "true", "clientAlgoId": "hand-algo-tp"}
    )  # fmt: skip
    # the exchange itself refuses a reduce-only close while the take-profit rests
    with pytest.raises(Exception, match="-4118"):
        ex.create_order(BTC, "market", "sell", held, None, {"reduceOnly": True})
    return {"tp": "hand-tp", "bid": "bid"}


def _status(sim: Any, key: str, cid: str) -> str:
    return next(o["status"] for o in orders_of(sim.state(), key) if o["clientOrderId"] == cid)


@pytest.mark.parametrize("policy", ["market", "capped"])
def test_flatten_without_cancel_orders_frees_the_take_profit_and_ends_flat(
    account: tuple[Any, str], policy: str
) -> None:
    sim, key = account
    creds = (key, _secret())
    _hand_orders(sim, creds, 0.01)
    result = run_cli(
        "flatten", "--url", sim.base_url, "--policy", policy, "--timeout", "20", "--json",
        env=sim_env(creds),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    report = json.loads(result.stdout)
    (closed,) = report["closed"]
    assert closed["to"] == 0.0 and report["cancelled"] == []  # no --cancel-orders
    assert [o["client_order_id"] for o in closed["freed"]] == ["hand-tp"]
    state = sim.state()
    assert position_of(state, key, "BTCUSDT") == 0.0
    assert _status(sim, key, "hand-tp") == "CANCELED"
    assert [o["clientOrderId"] for o in open_orders_of(state, key)] == ["bid"]  # stays
    (algo,) = state["algo_orders"]
    assert algo["algoStatus"] == "CANCELED"  # flat: the conditional orders go (docs/kill.md)

    plain = run_cli("flatten", "--url", sim.base_url, env=sim_env(creds))  # nothing left
    assert plain.returncode == 0 and "no open position" in plain.stdout


def test_flatten_says_which_orders_it_cancelled_to_get_out(account: tuple[Any, str]) -> None:
    sim, key = account
    creds = (key, _secret())
    _hand_orders(sim, creds, 0.01)
    result = run_cli(
        "flatten", "--url", sim.base_url, "--policy", "market", "--timeout", "20",
        env=sim_env(creds),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr + result.stdout
    assert "cancelled 1 resting reduce-only order(s) that held the position (hand-tp)" in (
        result.stdout
    )
    assert position_of(sim.state(), key, "BTCUSDT") == 0.0


def test_kill_flatten_of_one_run_frees_a_take_profit_placed_by_hand(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    """`--run` covers the bot only: its watchdog cancels the run's own orders, not the
    take-profit placed by hand, which would hold the position against every flatten
    order; the flatten cancels it and closes."""
    sim, creds, toml = bot_files(
        params={"mode": "sleep", "orders_per_symbol": 1, "open_position": 0.01},
    )
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 2, timeout=30)
    assert position_of(sim.state(), creds[0], "BTCUSDT") == pytest.approx(0.01)
    _hand_orders(sim, creds, 0.0)

    result = run_cli(
        "kill", "--level", "flatten", "--run", "hang", "--reason", "tp drill", "--wait", "20"
    )
    assert result.returncode == 0, result.stderr + result.stdout
    state = sim.state()
    assert position_of(state, creds[0], "BTCUSDT") == 0.0
    assert position_of(state, creds[0], "ETHUSDT") == 0.0
    assert _status(sim, creds[0], "hand-tp") == "CANCELED"
    assert [o["clientOrderId"] for o in open_orders_of(state, creds[0])] == ["bid"]  # stays
    code, out, err = bot.finish()
    assert code == 4, err
    assert "EXIT_REDUCE_ONLY_FREED" in out and "hand-tp" in out


def _secret() -> str:
    return os.environ["PERPBOT_SIM_API_SECRET"]  # the account fixture put it there
