"""The rate reserve at a real run's start and in `perpbot status`.

The simulator publishes Binance's 2400 weight per minute: the cap is 2280 and its default
10 % reserve 228. A bot on two symbols refreshing its dead-man every 10 s (set; a 30 s countdown)
sends 2 x 10 weight x 6 = 120 weight per minute of ``countdownCancelAll``: more than half the
reserve, so the start warns once on stderr, explained, with the settings that would fix it.
`perpbot status` shows the reserve: its share, its size and what is used of it.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    account_of,
    start_bot,
    wait_until,
)


def test_the_start_warns_when_the_deadman_would_eat_the_reserve_and_status_shows_it(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "idle", "orders_per_symbol": 0},
        kill={"deadman_countdown_s": 30, "deadman_refresh_s": 10},
    )
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(account_of(sim.state(), creds[0])["countdowns"]) == 2, 60)
    view = wait_until(lambda: _rate_of_the_bot().get("reserve"), 30)
    assert view["pct"] == 10.0 and view["weight"] == 228 and view["window"] == "1m"
    assert isinstance(view["used"], int) and 0 <= view["used"] <= 228
    plain = run_cli("status")
    assert plain.returncode == 0, plain.stderr
    assert "reserve 10% (228 weight): " in plain.stdout
    bot.signal(signal.SIGTERM)
    code, out, err = bot.finish(timeout=60)
    assert code == 0, err
    said = [line for line in err.splitlines() if "rate reserve" in line]
    assert said == [
        "perpbot: warning: the dead-man's refreshes on 2 symbol(s) (10 weight each, every 10 s:"
        " 120 weight per 1m) would take 53% of the rate reserve (228 of the 2280 weight per 1m,"
        " [limits] reserve_pct = 10) kept for cancels, reduce-only orders and the kill switch,"
        " so a kill's cancels could wait for the next window; set [limits] reserve_pct = 11 or"
        " [kill] deadman_refresh_s = 11 (below deadman_countdown_s)"
    ]
    assert "RATE_RESERVE_DEADMAN" in out


def _rate_of_the_bot() -> dict[str, Any]:
    result = run_cli("status", "--json")
    if result.returncode != 0:
        return {}
    bots = json.loads(result.stdout).get("bots") or []
    return bots[0].get("rate") or {} if bots else {}
