"""A bot that spends its whole rate budget cannot hold back its own kill.

The simulator publishes a small weight limit (300 per 30 s). The kill tests' ``hang``
strategy, idle but polling (``[exchange] streams = false``) every 0.2 s on two symbols,
spends it within seconds: the bot's client-side limiter then holds its reads until the
window turns. Then
`perpbot kill` (the real CLI): the bot's cancels, and the lookups that confirm them, must not
queue behind that budget. They draw on the reserve ordinary requests may not touch
(``[limits] reserve_pct``), so the simulator sees every order cancelled within a few seconds,
and no 429 or 418 (the limiter kept under the exchange's limit all along).

The simulator's own state is the truth: its per-IP weight counter shows the budget spent to
the limiter's ceiling, its orders carry their cancel times, its counters the 429s and 418s.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from perpbot.sim.config import LimitsConfig
from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    now_ms,
    open_orders_of,
    orders_of,
    quiet_market,
    start_bot,
    wait_until,
    write_strategy,
)

LIMIT = 300  # the simulator's weight per window (published in exchangeInfo.rateLimits)
WINDOW_S = 30
# ordinary requests may use (1 - margin) * (1 - reserve) of the limit: 0.95 * 0.75 * 300 = 213
# (without a reserve 285); one idle tick costs ~12
SATURATED = 200
# from `perpbot kill` starting (a Python process on a loaded machine) to every order cancelled
# at the exchange; held by the budget it would be the rest of the minute window
BOUND_S = 5.0
KILL_WITH_WINDOW_LEFT_S = 20.0  # kill early in a window: a held cancel would wait >= 15 s


def _ip_weight(state: dict[str, Any]) -> tuple[int, float]:
    """The simulator's weight counter for the bot's IP: (used, ms left in its window)."""
    ips = state["limits"]["ips"]
    if not ips:
        return 0, 0.0
    ip = ips.get("127.0.0.1") or next(iter(ips.values()))
    left_ms = ip["window_start"] + WINDOW_S * 1000 - state["server_time"]
    return int(ip["weight_used"]), float(left_ms)


def test_a_bot_spending_its_whole_budget_is_still_killed_at_once(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(
        market=quiet_market(),
        limits=LimitsConfig(weight_per_window=LIMIT, weight_window_s=WINDOW_S, ban_base_s=120),
    )
    creds = sim.create_account()
    toml = write_strategy(
        tmp_path,
        sim.base_url,
        params={"mode": "idle", "orders_per_symbol": 2},
        exchange={"streams": False},
        # the reserve must cover the dead-man's refreshes too (they reduce risk): 2 symbols x
        # 10 weight every 10 s = up to 60 per 30 s window, plus the kill's ~6; 25 % of the
        # 285 cap is 71 (the default 10 % suits the real 2400 per minute, not this budget)
        extra={"limits": {"reserve_pct": 25}},
    )
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 4, timeout=60)

    seen: list[int] = []

    def saturated_early_in_a_window() -> bool:
        used, left_ms = _ip_weight(sim.state())
        seen.append(used)
        # spent to the ceiling and held there (not trickling) for a second
        held = len(seen) > 10 and seen[-11] == used
        return used >= SATURATED and held and left_ms >= KILL_WITH_WINDOW_LEFT_S * 1000

    # the budget spent to the limiter's ceiling, with most of the window still to run
    wait_until(saturated_early_in_a_window, timeout=3 * WINDOW_S, interval=0.1)
    _, left_ms = _ip_weight(sim.state())

    started = now_ms()
    result = run_cli("kill", "--reason", "budget spent", "--wait", "5", timeout=60)
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    # (held back, they would go when the window turns: wait for that, to say how long)
    wait_until(lambda: not open_orders_of(sim.state(), creds[0]), timeout=WINDOW_S + 30)
    state = sim.state()
    mine = orders_of(state, creds[0])
    assert len(mine) == 4
    took_s = (max(int(o["cancelTime"] or o["updateTime"]) for o in mine) - started) / 1000
    print(f"the kill's cancels at the exchange {took_s:.2f} s after `perpbot kill` started")
    assert took_s < BOUND_S, (
        f"the kill's cancels took {took_s:.1f} s ({left_ms / 1000:.0f} s were left in the "
        f"weight window): they waited for the budget the bot had spent; {out}"
    )
    assert result.returncode == 0, out
    assert state["counters"]["http_429"] == 0
    assert state["counters"]["http_418"] == 0
    code, _, err = bot.finish(60)
    assert code == 4, err
