"""Wiring the kill switch into `perpbot run` (called from perpbot/app/plugins.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from perpbot.errors import KillSwitchActive
from perpbot.kill.deadman import Deadman, DeadmanRun
from perpbot.kill.sentinel import CLEAR_HINT, read_sentinel, shared_watcher
from perpbot.kill.sweep import StartSweep, SweepRun
from perpbot.kill.trips import Trips, TripsRun
from perpbot.kill.watchdog import KillWatchdog, WatchdogRun

if TYPE_CHECKING:
    from perpbot.config import LoadedStrategy


class KillRun(WatchdogRun, TripsRun, SweepRun, DeadmanRun, Protocol):
    """What the kill switch uses of a run: what its watchdog, trips, start-up sweep and
    dead-man use."""


def preflight(loaded: LoadedStrategy) -> None:
    """Refuse to start while a sentinel covering this bot stands (exit 4)."""
    sentinel = read_sentinel()
    if sentinel is None:
        return
    cfg = loaded.config
    entry = sentinel.match(profile=cfg.exchange.profile, strategy=cfg.strategy.name)
    if entry is not None:
        raise KillSwitchActive(
            f"refusing to start {cfg.strategy.name}: the kill switch is set ({entry.describe()}); "
            f"{CLEAR_HINT}",
            code="KILL_ACTIVE",
        )


def attach(runner: KillRun) -> KillWatchdog:
    """Watchdog, automatic trips, the start-up sweep (orders left by earlier runs, other
    bots, manual orders) and the dead-man switch. Returns the watchdog: its
    ``kill_state`` is what the strategy reads of the switch (perpbot.app.plugins).

    Attached last (perpbot.app.plugins): the dead-man countdown arms after every other
    start-up step, and is disarmed only once the run's orders are confirmed gone.
    """
    cfg = runner.config.kill
    watcher = shared_watcher()
    watchdog = KillWatchdog(runner, cfg, watcher)
    runner.background.append(watchdog.run)
    runner.tick_providers.append(watchdog.status)
    Trips(runner, cfg, watcher).attach()
    sweep = StartSweep(runner)  # what stands on the account: before anything is armed
    sweep.attach()
    if cfg.deadman:
        Deadman(runner, cfg, watchdog, sweep).attach()
    return watchdog
