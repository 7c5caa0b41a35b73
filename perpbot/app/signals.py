"""The run's signal handlers: Ctrl-C and SIGTERM ask for a clean stop (the stop sequence
runs); a second Ctrl-C stops waiting for it (exit 130 at once)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Callable

from perpbot.errors import EXIT_INTERRUPTED, EXIT_OK


def install_signals(
    loop: asyncio.AbstractEventLoop, request_stop: Callable[[str, int], None]
) -> None:
    """On ``loop`` (no-op where the platform or thread has no signal handlers)."""
    interrupts = {"n": 0}

    def on_int() -> None:
        interrupts["n"] += 1
        if interrupts["n"] > 1:  # a second Ctrl-C: stop waiting for a clean stop
            os._exit(EXIT_INTERRUPTED)
        request_stop("interrupted", EXIT_INTERRUPTED)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGINT, on_int)
        loop.add_signal_handler(signal.SIGTERM, lambda: request_stop("terminated", EXIT_OK))


def release_signals(loop: asyncio.AbstractEventLoop) -> None:
    """`perpbot run`'s work is done (stopped, summarised, closed): SIGINT and SIGTERM are
    ignored from here to the process's exit (``perpbot.cli.entry.finish`` keeps it so), so
    the command ends with its own exit code. (For the CLI's process only: a program running
    a Runner in-process keeps its own signal handling.)

    Done before ``asyncio.run`` closes the loop: asyncio closes its wakeup pipe *before* it
    takes its signal handlers down, and a signal in between printed "Exception ignored when
    trying to write to the signal wakeup fd" with a traceback; and taking a handler down puts
    the default back (SIGTERM would kill). So each signal is ignored first, then asyncio's
    handler is taken down, then ignored again (the default stands only between those two
    calls)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            signal.signal(sig, signal.SIG_IGN)
            loop.remove_signal_handler(sig)
            signal.signal(sig, signal.SIG_IGN)
