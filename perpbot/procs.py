"""Is that process still there? One answer for status, kill acknowledgements, run listings
and the log verifier. Standard library only: `perpbot kill` uses it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def pid_alive(pid: Any, host: Any = None, started_at: float | None = None) -> bool:
    """Whether ``pid`` is a live process on this host.

    ``host``: the host that recorded the pid (another host's pid says nothing here).
    ``started_at``: when the recorded process started; a process that started later is a
    different one that reused the pid (Linux, from /proc).
    """
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if host:
        # lazy: start-up speed of `perpbot kill` (it lists bots without a host to compare)
        import socket

        if host != socket.gethostname():
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        pass
    except OSError:
        return False
    if started_at is None:
        return True
    start = process_start(pid)
    return start is None or start <= started_at + 5.0


def process_start(pid: int) -> float | None:
    """The process's start time (epoch seconds) from /proc, or None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        btime = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None
