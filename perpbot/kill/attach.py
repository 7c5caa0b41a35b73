"""Wiring the kill switch into `perpbot run` (called from perpbot/engine/plugins.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from perpbot.errors import KillSwitchActive
from perpbot.kill.sentinel import CLEAR_HINT, read_sentinel, shared_watcher

if TYPE_CHECKING:
    from perpbot.config import LoadedStrategy
    from perpbot.engine.runner import Runner
    from perpbot.kill.watchdog import KillWatchdog


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


def attach(runner: Runner) -> KillWatchdog:
    """Watchdog, kill state for strategies, automatic trips and the dead-man switch."""
    from perpbot.kill.deadman import Deadman
    from perpbot.kill.trips import Trips
    from perpbot.kill.watchdog import KillWatchdog

    cfg = runner.config.kill
    watcher = shared_watcher()
    watchdog = KillWatchdog(runner, cfg, watcher)
    runner.kill_state_fn = watchdog.kill_state
    runner.background.append(watchdog.run)
    runner.tick_providers.append(watchdog.status)
    Trips(runner, cfg, watcher).attach()
    if cfg.deadman:
        Deadman(runner, cfg, watchdog).attach()
    return watchdog
