"""This process's handle on one host's shared budget: the store thread, a mirror, events.

Store transactions never run on the event loop: that loop also runs the kill watchdog, and a
SQLite write lock held by another process (up to its busy timeout) or a slow Redis (up to its
socket timeout) must not hold a kill up. They run, one at a time and in the order they were
asked for, on one thread per host handle: ``transact`` awaits one, ``post`` queues one
without waiting (a response hook, which ccxt calls synchronously, cannot await), and, as the
queue is first in first out, a 429 posted by a response hook is in the shared state before
this process's next transaction reads it.

The mirror is the state as of this process's last transaction; it answers cheap questions
(is the host blocked? are the rules due?) without a round trip, and the authoritative
answer always comes from a transaction on the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from perpbot.events import Decision, EventBus
from perpbot.ratelimit.budget import Change, HostState, Policy
from perpbot.ratelimit.stores import Store

T = TypeVar("T")
LAYER = "ratelimit"
CLOSE_WAIT_S = 1.0


@dataclass(slots=True, eq=False)
class HostBudget:
    store: Store
    policy: Policy
    bus: EventBus
    exchange: Any
    key_id: str
    mirror: HostState = field(default_factory=HostState, init=False)
    _thread: ThreadPoolExecutor = field(init=False)
    _last_posted: Future[Any] | None = field(default=None, init=False)
    # transactions queued by ``post`` (counted on the event loop) and, of those, how many
    # have run (counted on the store thread): ``posting`` compares two ints, where asking
    # the last future would take its lock on every request
    _posted: int = field(default=0, init=False)
    _posted_ran: int = field(default=0, init=False)
    # when the store thread began its current transaction and when it ended its last one
    # (time.monotonic(), set on the store thread): how a cancel tells a store that is stuck
    # (another process holds the SQLite write lock) from one that is merely busy
    started_at: float = field(default=0.0, init=False)
    ended_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="perpbot-ratelimit")

    def now(self) -> float:
        """The exchange's clock (windows are aligned to it), from ccxt's time offset."""
        return time.time() - float(self.exchange.options.get("timeDifference") or 0) / 1000.0

    def _run(self, fn: Callable[[HostState], T]) -> T:
        """On the store thread: ``fn`` atomically on the shared state (it may run more than
        once: keep it pure), and the mirror made the state it left."""

        def run(st: HostState) -> T:
            result = fn(st)
            self.mirror = st
            return result

        self.started_at = time.monotonic()
        try:
            return self.store.transact(run)
        finally:
            self.ended_at = time.monotonic()

    def busy_for(self) -> float:
        """How long the store thread has been on its current transaction (0 when idle)."""
        started = self.started_at
        return time.monotonic() - started if started > self.ended_at else 0.0

    async def transact(self, fn: Callable[[HostState], T]) -> T:
        """Run ``fn`` in a store transaction, off the event loop."""
        return await asyncio.wrap_future(self._thread.submit(self._run, fn))

    def submit(self, fn: Callable[[HostState], T]) -> Future[T]:
        """Queue ``fn`` for a store transaction; the caller decides how long to wait."""
        return self._thread.submit(self._run, fn)

    def post(self, fn: Callable[[HostState], list[Change] | None]) -> None:
        """Queue ``fn`` without waiting; the changes it returns are published on the event
        loop once it ran. A failure is not raised here: the store being unreachable also
        fails this process's next transaction, which refuses its request. Without a running
        event loop (a tool), it runs ``fn`` and waits here."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.publish(self.txn(fn) or [])
            return
        future = self._thread.submit(self._run_posted, fn)
        self._posted += 1
        self._last_posted = future

        def done(f: Future[list[Change] | None]) -> None:
            if f.cancelled() or f.exception() is not None:
                return
            changes = f.result()
            if changes:
                with contextlib.suppress(RuntimeError):  # the loop has closed meanwhile
                    loop.call_soon_threadsafe(self.publish, changes)

        future.add_done_callback(done)

    def _run_posted(self, fn: Callable[[HostState], T]) -> T:
        """``_run`` for ``post``, counted once it has run (on the store thread)."""
        try:
            return self._run(fn)
        finally:
            self._posted_ran += 1

    @property
    def posting(self) -> bool:
        """Whether a transaction queued by ``post`` has yet to run."""
        return self._posted_ran < self._posted

    async def settled(self) -> None:
        """Wait until everything posted so far has run and its changes are published."""
        future = self._last_posted
        if future is None or future.done():
            return
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(future)
        await asyncio.sleep(0)  # the publishing callback, scheduled by the store thread

    def txn(self, fn: Callable[[HostState], T]) -> T:
        """Run ``fn`` in a store transaction and wait for it here: for setting up (before
        the run's loop has work to do) and for tools; on the event loop, use ``transact``."""
        return self._thread.submit(self._run, fn).result()

    def publish(self, changes: list[Change]) -> None:
        for c in changes:
            self.bus.publish(
                Decision(
                    layer=LAYER,
                    action=c.action,
                    code=c.code,
                    sentence=c.sentence,
                    data=dict(c.data),
                )
            )

    def close(self) -> None:
        """Close the store once the queued transactions have run; wait for that at most
        ``CLOSE_WAIT_S`` (a transaction stuck on another process's lock finishes alone)."""
        closing = self._thread.submit(self.store.close)
        self._thread.shutdown(wait=False)
        with contextlib.suppress(TimeoutError):
            closing.result(timeout=CLOSE_WAIT_S)
