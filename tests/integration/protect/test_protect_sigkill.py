"""Issue 17's bar: SIGKILL the engine with an open position and [protect] on.

The bot is a real ``perpbot run`` subprocess; the simulator's own state is the truth. After
the SIGKILL (and after the dead-man countdown has lapsed), the position's closePosition stop
still stands on the exchange, and when the price crosses it the exchange closes the position.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.integration.kill_strategies.support import (
    Bot,
    account_of,
    position_of,
    quiet_market,
    start_bot,
    wait_until,
    write_strategy,
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
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(market=quiet_market())
    creds = sim.create_account()
    key = creds[0]
    toml = write_strategy(
        tmp_path,
        sim.base_url,
        params={"mode": "idle", "orders_per_symbol": 0, "open_position": 0.01},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.2},
        kill={"deadman_countdown_s": COUNTDOWN_S, "deadman_refresh_s": 0.25},
        extra={"protect": {"enabled": True, "stop_pct": 2.0, "check_interval_s": 0.2}},
    )
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
