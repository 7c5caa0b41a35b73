"""Shared fixtures: an isolated state dir for every test, the simulator, the CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.keys_support.backends import MemoryKeyring, installed

ROOT = Path(__file__).resolve().parents[1]

# Workers per core for `-n auto` (pyproject addopts): most tests wait on `perpbot run`
# subprocesses, simulators and timers rather than burn CPU, so two per core pays.
# PYTEST_XDIST_AUTO_NUM_WORKERS=N overrides it; `-n 0` runs in one process.
WORKERS_PER_CORE = 2


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    return WORKERS_PER_CORE * (os.cpu_count() or 1)


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own $PERPBOT_HOME; nothing touches the user's real state."""
    home = tmp_path / "perpbot-home"
    home.mkdir()
    monkeypatch.setenv("PERPBOT_HOME", str(home))
    return home


@pytest.fixture
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    """An in-memory keyring for the test (never the machine's): stored profiles, the audit
    key. A module that stores profiles says ``pytestmark = pytest.mark.usefixtures(
    "memory_keyring")``; a test that looks inside requests it by name."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    with installed(MemoryKeyring()) as backend:
        yield backend


@pytest.fixture
def sim_factory() -> Iterator[Any]:
    """Start simulators (``sim_factory(**SimConfig fields)``); all are stopped at teardown."""
    from perpbot.sim import SimConfig, start_in_thread

    handles: list[Any] = []

    def make(**fields: Any) -> Any:
        fields.setdefault("seed", 7)
        handle = start_in_thread(SimConfig(**fields), host="127.0.0.1", port=0)
        handles.append(handle)
        return handle

    yield make
    for h in handles:
        h.stop()


@pytest.fixture
def sim(sim_factory: Any) -> Any:
    """One simulator with the default configuration."""
    return sim_factory()


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    input: str | None = None,
    timeout: float = 120,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``perpbot ARGS`` in a subprocess (the way a user meets it)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "perpbot", *args],
        capture_output=True,
        text=True,
        env=full_env,
        input=input,
        timeout=timeout,
        cwd=str(cwd or ROOT),
    )


@pytest.fixture
def cli() -> Any:
    return run_cli
