"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.integration.kill_strategies.support import Bot, quiet_market


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
