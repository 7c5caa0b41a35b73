"""Start-up benches measure perpbot as pip installs it: with its bytecode cached.

pip compiles a wheel's modules to ``.pyc`` at install time, and ``import ccxt`` (the
yardstick) is measured that way; an editable checkout gets its ``.pyc`` files only when
Python may write them. Under ``PYTHONDONTWRITEBYTECODE=1`` (set on some machines) every
run of `perpbot kill` would compile perpbot's modules from source (~10 ms here), which no
installed perpbot does. So the benches run their commands without it, after a warm-up run
that writes the cache, and say so.
"""

from __future__ import annotations

import os

VAR = "PYTHONDONTWRITEBYTECODE"


def installed_env(**extra: str) -> dict[str, str]:
    """This process's environment plus ``extra``, without ``PYTHONDONTWRITEBYTECODE``."""
    env = {k: v for k, v in os.environ.items() if k != VAR}
    env.update(extra)
    return env


def note() -> str:
    """One line for the bench's output: how perpbot's bytecode is handled."""
    if os.environ.get(VAR):
        return f"bytecode: cached, as installed ({VAR} is dropped for the measured commands)"
    return "bytecode: cached, as installed"
