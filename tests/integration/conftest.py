"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kill_strategies.support import (
    Bot,
    BotFiles,
    MakeBotFiles,
    quiet_market,
    write_strategy,
)


@pytest.fixture
def bots() -> Iterator[list[Bot]]:
    """Bots (``perpbot run`` subprocesses) a test starts; all are stopped at teardown."""
    started: list[Bot] = []
    yield started
    for bot in started:
        bot.stop()


@pytest.fixture
def account(sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    """A quiet simulated market and one account whose key the bots under test use."""
    sim = sim_factory(market=quiet_market())
    key, secret = sim.create_account()
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    return sim, key


@pytest.fixture
def bot_files(sim_factory: Any, tmp_path: Path) -> MakeBotFiles:
    """``bot_files(**write_strategy's keywords)`` -> (sim, creds, strategy.toml): a quiet
    simulated market, a fresh account on it, and the test bot's strategy file
    (kill_strategies/hang.py) pointed at that market; each call makes a new simulator."""

    def make(**strategy_file: Any) -> BotFiles:
        sim = sim_factory(market=quiet_market())
        creds = sim.create_account()
        return sim, creds, write_strategy(tmp_path, sim.base_url, **strategy_file)

    return make
