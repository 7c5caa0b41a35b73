"""Interruptible waits.

Every wait perpbot makes on the exchange's behalf (a rate-limit pause, a backoff sleep, a
ban) goes through ``Interrupter.sleep`` so that a stop, Ctrl-C or the kill switch cuts it
short at once instead of leaving a bot asleep while a trader needs it to act.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class WaitInterrupted(Exception):
    """A wait was cut short; ``reason`` says by what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Interrupter:
    def __init__(self) -> None:
        self._reason: str | None = None
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = set()
        self._cut: dict[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]], str] = {}

    @property
    def reason(self) -> str | None:
        return self._reason

    @property
    def interrupted(self) -> bool:
        return self._reason is not None

    def interrupt(self, reason: str) -> None:
        """Cut every current and future wait short (thread-safe)."""
        with self._lock:
            if self._reason is None:
                self._reason = reason
            waiters = list(self._waiters)
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(_wake, fut)

    def interrupt_current(self, reason: str) -> int:
        """Cut only the waits in progress short (later waits wait as usual); how many.

        For the kill switch: whatever sleeps in a backoff when it trips must not go out
        after the sleep, but the watchdog's own cancels must still be able to wait for
        budget afterwards.
        """
        with self._lock:
            waiters = list(self._waiters)
            for entry in waiters:
                self._cut.setdefault(entry, reason)
        for loop, fut in waiters:
            with contextlib.suppress(RuntimeError):  # loop already closed
                loop.call_soon_threadsafe(_wake, fut)
        return len(waiters)

    def reset(self) -> None:
        with self._lock:
            self._reason = None

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or raise WaitInterrupted as soon as interrupted."""
        if self._reason is not None:
            raise WaitInterrupted(self._reason)
        if seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        entry = (loop, fut)
        with self._lock:
            self._waiters.add(entry)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(fut), timeout=seconds)
        finally:
            with self._lock:
                self._waiters.discard(entry)
                cut = self._cut.pop(entry, None)
        reason = self._reason or cut
        if reason is not None:
            raise WaitInterrupted(reason)


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)
