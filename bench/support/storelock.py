"""Another process holding a SQLite budget store's write lock (for bench/kill_latency.py and
the store-locked kill test): what a slow neighbour, a backup or a wedged process can do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from perpbot.ratelimit.stores import host_slug

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10, isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("LOCKED", time.time(), flush=True)
time.sleep(float(sys.argv[2]))
db.execute("ROLLBACK")
print("RELEASED", time.time(), flush=True)
"""


def store_path(state_home: Path, base_url: str) -> Path:
    """The SQLite budget store of the exchange at ``base_url`` under ``$PERPBOT_HOME``."""
    return state_home / "limits" / f"{host_slug(base_url.split('://', 1)[1])}.sqlite"


def hold_write_lock(store: Path, seconds: float) -> tuple[subprocess.Popen[str], float]:
    """Start a process that holds ``store``'s write lock for ``seconds``; returns it, once
    it holds the lock, with the time it took it (its stdout then says RELEASED <time>)."""
    cmd = [sys.executable, "-c", HOLD_LOCK, str(store), str(seconds)]
    holder = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None
    word, _, at = holder.stdout.readline().partition(" ")
    if word != "LOCKED":
        holder.kill()
        holder.wait(10)
        raise RuntimeError(f"could not take the write lock of {store}")
    return holder, float(at)
