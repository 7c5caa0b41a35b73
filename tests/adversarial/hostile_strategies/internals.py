"""Imports perpbot's internals to reach the engine, or to build its own guarded client."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from perpbot.engine import Context
from tests.adversarial.hostile_strategies.base import Hostile


def a_runner() -> list[Any]:
    from perpbot.app.lifecycle import Runner

    return [o for o in gc.get_objects() if isinstance(o, Runner)]


def own_exchange(url: str) -> Any:
    """ccxt straight at the simulator, with whatever credentials can be found."""
    import os

    import ccxt

    from perpbot.client.loopback import configure_loopback

    ex = ccxt.binanceusdm(
        {
            "apiKey": os.environ.get("PERPBOT_SIM_API_KEY", "x"),
            "secret": os.environ.get("PERPBOT_SIM_API_SECRET", "y"),
            "options": {"fetchCurrencies": False},
        }
    )
    configure_loopback(ex, url)
    return ex.fapiPublicGetTime()


def kill_sentinel_clear() -> Any:
    """Clear the kill switch the way `perpbot kill --clear` does, from inside a strategy."""
    from perpbot.paths import state_path

    return list(state_path().iterdir())


class Internals(Hostile):
    def attacks(self, ctx: Context) -> dict[str, Callable[[], Any]]:
        url = self.params["url"]
        return {
            "find the Runner": a_runner,
            "own ccxt to the exchange": lambda: own_exchange(url),
            "the engine's state dir": kill_sentinel_clear,
        }
