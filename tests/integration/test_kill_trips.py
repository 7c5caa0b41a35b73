"""Automatic trips and cut-short waits, in a real run against the simulator.

The run happens in the test's event loop (the runner, the full pipeline, ccxt over HTTP);
the simulator's fault plan makes the exchange misbehave on demand.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from perpbot.app import plugins
from perpbot.config import load_strategy
from perpbot.errors import KillSwitchActive
from perpbot.kill.sentinel import new_entry, read_sentinel, write_sentinel
from tests.integration.kill_strategies.support import (
    InProcessBot,
    open_orders_of,
    orders_of,
    position_of,
    write_strategy,
)


def _toml(tmp_path: Path, sim: Any, kill: dict[str, Any], **extra: Any) -> Path:
    return write_strategy(
        tmp_path,
        sim.base_url,
        params={"mode": "idle", "orders_per_symbol": 2},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.1},
        kill=kill,
        # these trips are judged on REST polling every tick (failures in a row, a slow
        # premiumIndex): the polling path; streams have their own (tests/integration/streams)
        extra={**extra, "exchange": {"url": sim.base_url, "streams": False}},
    )


async def test_consecutive_failures_trip_and_a_restart_is_refused(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    toml = _toml(tmp_path, sim, {"max_consecutive_failures": 4})
    bot = InProcessBot(toml).start()
    await bot.until(lambda: len(open_orders_of(sim.state(), key)) == 2)
    sim.set_faults({"errors": {"rate": 1.0, "statuses": [503]}})
    await bot.until(lambda: bot.decisions("KILL_FAILURES"))
    sim.set_faults({})  # the exchange is back: the watchdog's cancels go through
    summary = await bot.finish()

    assert summary["exit_code"] == 4
    assert summary["end_reason"].startswith("kill switch: automatic trip KILL_FAILURES")
    (trip,) = bot.decisions("KILL_FAILURES")
    assert trip.action == "trip" and trip.layer == "kill"
    assert "4 exchange requests failed in a row" in trip.sentence
    assert "max_consecutive_failures = 4" in trip.sentence
    assert not open_orders_of(sim.state(), key)
    sentinel = read_sentinel()
    assert sentinel is not None
    assert sentinel.primary.code == "KILL_FAILURES" and sentinel.primary.scope == "run:hang"
    with pytest.raises(KillSwitchActive, match="refusing to start hang"):
        plugins.preflight(load_strategy(toml))


async def test_stale_mark_price_trips(account: tuple[Any, str], tmp_path: Path) -> None:
    sim, key = account
    toml = _toml(tmp_path, sim, {"max_price_age_s": 0.8})
    bot = InProcessBot(toml).start()
    await bot.until(lambda: len(open_orders_of(sim.state(), key)) == 2)
    sim.set_faults({"latency": {"fixed_ms": 3000, "paths": ["/fapi/v1/premiumIndex"]}})
    await bot.until(lambda: bot.decisions("KILL_STALE_PRICE"))
    sim.set_faults({})
    summary = await bot.finish()

    assert summary["exit_code"] == 4
    (trip,) = bot.decisions("KILL_STALE_PRICE")
    assert "no fresh mark price for BTC/USDT:USDT" in trip.sentence
    assert "max_price_age_s = 0.8" in trip.sentence
    assert summary["kill"]["cancelled"] and not open_orders_of(sim.state(), key)


async def test_drawdown_is_measured_from_the_peak(account: tuple[Any, str], tmp_path: Path) -> None:
    sim, key = account
    toml = write_strategy(
        tmp_path,
        sim.base_url,
        params={"mode": "idle", "orders_per_symbol": 0, "open_position": 0.2},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.1},
        kill={"max_drawdown_pct": 5.0},
        extra={"risk": {"accept_no_limits": True}},  # a 12k position on a 10k account
    )
    bot = InProcessBot(toml).start()
    r = bot.runner
    await bot.until(lambda: position_of(sim.state(), key, "BTCUSDT") > 0)
    await bot.until(lambda: r.start_equity is not None and r.state.peak_equity is not None)
    start = r.start_equity
    sim.jump("BTCUSDT", 5.0)  # a good stretch: +600 USDT, a new peak
    await bot.until(lambda: r.state.peak_equity > start + 400)
    sim.jump("BTCUSDT", 100.0 / 1.05 - 100.0)  # back to where it started
    await bot.until(lambda: bot.decisions("KILL_DRAWDOWN"))
    summary = await bot.finish()

    (trip,) = bot.decisions("KILL_DRAWDOWN")
    assert trip.data["peak"] > start + 400
    assert trip.data["equity"] > start * 0.98, "down from the peak, not from the start"
    assert "below its peak" in trip.sentence and "max_drawdown_pct = 5" in trip.sentence
    assert summary["exit_code"] == 4


async def test_a_long_backoff_wait_is_cut_short_by_the_kill_switch(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, key = account
    # REST polling: each tick's reconcile reads the mark over REST (on streams it comes from
    # the mark price stream, and no request would be retried here)
    toml = write_strategy(
        tmp_path,
        sim.base_url,
        params={"mode": "idle", "orders_per_symbol": 2},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.1},
        exchange={"streams": False},
        extra={
            "retry": {"base_delay_s": 30.0, "max_delay_s": 30.0, "deadline_s": 120.0,
                      "jitter_s": 0.0},
        },
    )  # fmt: skip
    bot = InProcessBot(toml).start()
    await bot.until(lambda: len(open_orders_of(sim.state(), key)) == 2)
    # The engine's reconcile now fails on the mark price and backs off for 30 s.
    sim.set_faults({"errors": {"rate": 1.0, "statuses": [503], "paths": ["/fapi/v1/premiumIndex"]}})
    await bot.until(lambda: _retried(bot))
    killed = time.monotonic()
    write_sentinel(new_entry("cancel", "backoff drill"))
    summary = await bot.finish(timeout=15)
    took = time.monotonic() - killed
    sim.set_faults({})

    assert took < 10.0, f"the run took {took:.1f} s to stop: the 30 s backoff was not cut short"
    assert summary["exit_code"] == 4
    orders = orders_of(sim.state(), key)
    assert orders and all(o["status"] == "CANCELED" for o in orders)


def _retried(bot: InProcessBot) -> bool:
    return any(getattr(e, "action", None) == "retry" for e in bot.events)
