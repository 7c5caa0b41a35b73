"""Process hardening for commands that hold an API secret in memory.

``no_core_dumps()`` sets ``RLIMIT_CORE`` to 0 (soft and hard: the process cannot raise it
again) and, on Linux, clears the dumpable flag (``prctl(PR_SET_DUMPABLE, 0)``), which also
keeps other processes of the same user from attaching a debugger or reading
``/proc/PID/mem``. A crash then leaves no core file holding the secret.

Called at the start of ``perpbot run``, ``perpbot kill --direct`` and every ``perpbot keys``
command. Where the platform lacks a mechanism it is skipped; the result says what held.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

PR_SET_DUMPABLE = 4  # <linux/prctl.h>


@dataclass(frozen=True, slots=True)
class Hardening:
    core_limit_zero: bool
    not_dumpable: bool


def _zero_core_limit() -> bool:
    try:
        # lazy: POSIX only (ImportError handled)
        import resource
    except ImportError:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    except (OSError, ValueError):
        return False
    return True


def _not_dumpable() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    # lazy: start-up speed of `perpbot --help` (ctypes.util loads tempfile, subprocess)
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return int(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def no_core_dumps() -> Hardening:
    """Forbid core dumps of this process (and ptrace by other same-user processes)."""
    return Hardening(core_limit_zero=_zero_core_limit(), not_dumpable=_not_dumpable())
