"""Where perpbot keeps its state.

Everything a command writes (runs, request logs, the kill sentinel, shared rate budgets,
status files) lives under one directory so that an operator can find, back up or wipe it in
one place: ``$PERPBOT_HOME`` when set (tests and scripts always set it), otherwise the
platform's user state directory.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "PERPBOT_HOME"


def state_path() -> Path:
    """Where the state directory is, without creating it (for a reader that must not write:
    `perpbot kill` when the state dir cannot be written)."""
    home = os.environ.get(ENV_HOME)
    if home:
        return Path(home).expanduser()
    # lazy: start-up speed of every CLI call (`perpbot kill` included); platformdirs is slow
    import platformdirs

    return platformdirs.user_state_path("perpbot", appauthor=False)


def state_dir() -> Path:
    """The state directory, created on first use."""
    path = state_path()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _sub(name: str) -> Path:
    path = state_dir() / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def runs_dir() -> Path:
    """One folder per run: summary.json, fills.jsonl, ticks.jsonl."""
    return _sub("runs")


def run_dir(run_id: str) -> Path:
    path = runs_dir() / run_id
    path.mkdir(parents=True, exist_ok=True)
    return path


def bots_dir() -> Path:
    """Status files that running bots publish for `perpbot status`."""
    return _sub("bots")


def logs_dir() -> Path:
    """The signed request logs."""
    return _sub("logs")


def limits_dir() -> Path:
    """Shared rate-limit budgets (one SQLite file per exchange key)."""
    return _sub("limits")


def kill_path() -> Path:
    """The kill-switch sentinel: its existence is the switch."""
    return state_dir() / "KILL"


def strategies_dir() -> Path:
    """What each strategy's ``on_save`` kept, one file per strategy name."""
    return _sub("strategies")
