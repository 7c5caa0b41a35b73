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
