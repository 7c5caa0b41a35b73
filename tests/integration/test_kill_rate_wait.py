"""A kill during a rate-limit storm does not wait out the exchange's Retry-After in silence.

Another process on the same IP burns the simulator's request weight until it is answered
429: the IP is in Retry-After, and any request before it passes earns a 418 ban
(``ban_base_s``). The bot's cancels meet that hold; without the cut they would sit in it for
a minute or two while `perpbot kill` waits. The simulator's open orders and 418 counter are
the truth: the orders are still open (named by the kill) and the bot did not keep sending.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from perpbot.sim.config import LimitsConfig
from tests.conftest import run_cli
from tests.integration.kill_strategies.support import (
    Bot,
    open_orders_of,
    quiet_market,
    start_bot,
    wait_until,
    write_strategy,
)


def _burn_weight_until_429(base_url: str) -> None:
    url = f"{base_url}/fapi/v1/depth?symbol=BTCUSDT&limit=1000"
    for _ in range(1000):
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                resp.read()
        except urllib.error.HTTPError as exc:
            assert exc.code == 429, exc.code
            return
    raise AssertionError("no 429 after 1000 requests")


def test_a_kill_cuts_a_rate_limit_hold_short_and_says_so(
    sim_factory: Any, tmp_path: Path, bots: list[Bot]
) -> None:
    sim = sim_factory(
        market=quiet_market(),
        limits=LimitsConfig(weight_per_window=1200, weight_window_s=60, ban_base_s=120),
    )
    creds = sim.create_account()
    toml = write_strategy(tmp_path, sim.base_url, params={"mode": "idle", "orders_per_symbol": 2})
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), creds[0])) == 4, timeout=30)
    _burn_weight_until_429(sim.base_url)

    started = time.monotonic()
    result = run_cli("kill", "--reason", "storm", "--wait", "60")
    took = time.monotonic() - started
    assert took < 30, f"the kill took {took:.0f} s: it waited out the hold"
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert "did not wait out the exchange's" in result.stdout
    assert "which holds requests until " in result.stdout
    assert "the kill switch cut short the wait of " in result.stdout
    state = sim.state()
    left = open_orders_of(state, creds[0])
    assert len(left) == 4  # the exchange refused to serve us: they are still there...
    for o in left:  # ...and each is named, with the countdown that will cancel it
        assert o["clientOrderId"] in result.stdout
    assert "dead-man countdown on BTC/USDT:USDT, ETH/USDT:USDT" in result.stdout
    # a held request is not sent: the bot did not hammer the banned IP
    assert state["counters"]["http_418"] <= 4
    code, _, err = bot.finish(60)
    assert code == 4, err
