"""The exchange-side dead-man switch: when the bot dies or wedges, the exchange cancels.

Nothing in the bot cancels in these tests: the bot is SIGKILLed, or its strategy hangs so
its engine stops ticking. The simulator's countdownCancelAll is what empties the book, and
its cancel timestamps show when.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    account_of,
    now_ms,
    open_orders_of,
    orders_of,
    start_bot,
    wait_until,
)

COUNTDOWN_MS = 1500


def _armed(sim: Any, key: str, n_orders: int) -> bool:
    state = sim.state()
    countdowns = account_of(state, key)["countdowns"]
    return len(open_orders_of(state, key)) == n_orders and bool(countdowns)


def test_sigkilled_bot_has_its_orders_cancelled_when_the_countdown_lapses(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "idle", "orders_per_symbol": 4},
        kill={"deadman_countdown_s": COUNTDOWN_MS / 1000, "deadman_refresh_s": 0.3},
    )
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: _armed(sim, creds[0], 8), timeout=30)
    assert set(account_of(sim.state(), creds[0])["countdowns"]) == {"BTCUSDT", "ETHUSDT"}

    bot.signal(signal.SIGKILL)
    killed_at = now_ms()
    bot.proc.wait(10)
    wait_until(lambda: not open_orders_of(sim.state(), creds[0]), timeout=COUNTDOWN_MS / 1000 + 5)

    orders = orders_of(sim.state(), creds[0])
    assert len(orders) == 8 and all(o["status"] == "CANCELED" for o in orders)
    # The last refresh was at most 0.3 s before the SIGKILL: the exchange cancelled within
    # one countdown of it (plus the simulator's timer granularity).
    assert all(killed_at - 400 <= o["cancelTime"] <= killed_at + COUNTDOWN_MS + 500 for o in orders)


def test_a_hung_strategy_stops_the_heartbeat_and_the_exchange_cancels(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "sleep", "orders_per_symbol": 3},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.2},
        kill={"deadman_countdown_s": 1.0, "deadman_refresh_s": 0.25},
    )
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: _armed(sim, creds[0], 3), timeout=30)
    laid_at = now_ms()
    # The engine's last tick was just before the strategy hung: refreshing stops after
    # tick_interval + countdown (1.2 s), and the exchange cancels one countdown later.
    wait_until(lambda: not open_orders_of(sim.state(), creds[0]), timeout=8)
    assert bot.proc.poll() is None, "the bot is still running (wedged), not stopped"
    orders = orders_of(sim.state(), creds[0])
    assert all(o["status"] == "CANCELED" for o in orders)
    assert all(o["cancelTime"] >= laid_at + 1000 for o in orders)
    bot.signal(signal.SIGTERM)
    code, out, err = bot.finish()
    assert code == 0, err
    assert "KILL_DEADMAN_LAPSING" in out and "engine's last tick was" in out
