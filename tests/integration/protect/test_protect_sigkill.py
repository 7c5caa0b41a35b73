"""Issue 17's bar: SIGKILL the engine with an open position and [protect] on.

The bot is a real ``perpbot run`` subprocess; the simulator's own state is the truth. After
the SIGKILL (and after the dead-man countdown has lapsed), the position's closePosition stop
still stands on the exchange, and when the price crosses it the exchange closes the position.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from perpbot.client.loopback import configure_loopback
from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    account_of,
    position_of,
    quiet_market,
    start_bot,
    wait_until,
)

BTC = "BTCUSDT"
COUNTDOWN_S = 1.0


def algo_orders_of(sim: Any, key: str) -> list[dict[str, Any]]:
    return [a for a in sim.state()["algo_orders"] if a["account"] == key]


def standing_stop(sim: Any, key: str) -> dict[str, Any] | None:
    for a in algo_orders_of(sim, key):
        if a["orderType"] == "STOP_MARKET" and a["algoStatus"] == "NEW":
            return a
    return None


def test_sigkilled_bot_leaves_its_stop_standing_and_the_exchange_closes_the_position(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "idle", "orders_per_symbol": 0, "open_position": 0.01},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.2},
        kill={"deadman_countdown_s": COUNTDOWN_S, "deadman_refresh_s": 0.25},
        extra={"protect": {"enabled": True, "stop_pct": 2.0, "check_interval_s": 0.2}},
    )
    key = creds[0]
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    stop = wait_until(lambda: standing_stop(sim, key), timeout=30)
    held = position_of(sim.state(), key, BTC)
    assert held == 0.01
    assert stop["closePosition"] is True and stop["side"] == "SELL"
    entry = next(p for p in account_of(sim.state(), key)["positions"] if p["symbol"] == BTC)
    assert abs(float(stop["triggerPrice"]) - float(entry["entryPrice"]) * 0.98) < 1.0

    bot.signal(signal.SIGKILL)
    bot.proc.wait(10)
    # the dead-man countdown lapses (the exchange cancels the bot's plain orders) ...
    wait_until(lambda: not account_of(sim.state(), key)["countdowns"], timeout=COUNTDOWN_S + 5)
    # ... and the stop still stands, the position still open
    after = standing_stop(sim, key)
    assert after is not None and after["algoId"] == stop["algoId"]
    assert position_of(sim.state(), key, BTC) == held

    sim.jump(BTC, -3.0)  # the price crosses the stop (2 % under the entry)
    wait_until(lambda: position_of(sim.state(), key, BTC) == 0.0, timeout=10)
    fired = next(a for a in algo_orders_of(sim, key) if a["algoId"] == stop["algoId"])
    assert fired["algoStatus"] in ("TRIGGERED", "FINISHED") and fired["actualOrderId"]


def _account_with_a_stop(sim: Any) -> tuple[str, str]:
    """A long 0.01 BTC with a closePosition stop and an opening take-profit, placed with
    unmodified ccxt (the way a bot that is gone left them)."""
    key, secret = sim.create_account()
    ex = ccxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    ex.load_markets()
    ex.create_order("BTC/USDT:USDT", "market", "buy", 0.01)
    mark = float(ex.fetch_funding_rate("BTC/USDT:USDT")["markPrice"])
    ex.create_order(
        "BTC/USDT:USDT", "market", "sell", None, None,
        {"stopLossPrice": round(mark * 0.98, 1), "closePosition": True},
    )  # fmt: skip
    return key, secret


@pytest.mark.parametrize("level", ["halt", "flatten"])
def test_kill_halt_keeps_the_stop_and_flatten_cancels_it_once_flat(
    sim_factory: Any, level: str
) -> None:
    sim = sim_factory(market=quiet_market())
    key, secret = _account_with_a_stop(sim)
    assert standing_stop(sim, key) is not None
    result = run_cli(
        "kill", "--level", level, "--direct", "--url", sim.base_url, "--wait", "0",
        env={"PERPBOT_SIM_API_KEY": key, "PERPBOT_SIM_API_SECRET": secret},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    if level == "halt":  # nothing is cancelled: the position keeps its protection
        assert standing_stop(sim, key) is not None
        assert position_of(sim.state(), key, BTC) == 0.01
    else:  # flat first, then its stops are gone (they would protect nothing)
        assert position_of(sim.state(), key, BTC) == 0.0
        assert standing_stop(sim, key) is None
        assert [a["algoStatus"] for a in algo_orders_of(sim, key)] == ["CANCELED"]
