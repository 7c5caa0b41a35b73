"""Fixtures shared by the integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.kill_strategies.support import Bot


@pytest.fixture
def bots() -> Iterator[list[Bot]]:
    """Bots (``perpbot run`` subprocesses) a test starts; all are stopped at teardown."""
    started: list[Bot] = []
    yield started
    for bot in started:
        bot.stop()
