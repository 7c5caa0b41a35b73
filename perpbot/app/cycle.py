"""The run cycle: the strategy's side of a run, on the engine's event loop.

    start    the strategy's host (a thread, or its own process), then ``on_start`` with what
             the last run saved (an error here stops the run before its first tick: exit 1)
    ticks    per tick: the run's state brought current (the lifecycle's ``before_tick``),
             then one cycle (the strategy's events so far, due timers, ``on_tick``), its
             state saved every ``[strategy] save_interval_s``, then the wait for the next
             tick, running a timer cycle whenever a timer falls due

Each call is one message to the host (perpbot.engine.hosts) and its outcome is read here: a
strategy error is told (file and line; the frames go to the run folder) and the run goes on,
up to MAX_TICK_ERRORS cycles in a row; a fatal one, or a crashed host, stops the run. The
stop sequence (perpbot.app.stop) stops and closes the host and keeps the strategy's totals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

from perpbot.config import LoadedStrategy
from perpbot.engine.context import Context
from perpbot.engine.feed import EventFeed
from perpbot.engine.hosts import Outcome, StrategyHost, ThreadHost
from perpbot.engine.isolation.host import ProcessHost
from perpbot.engine.journal import RunJournal
from perpbot.engine.ledger import Ledger
from perpbot.engine.output import RunOutput
from perpbot.engine.saved import Saved, check_state, load_saved, store_saved, totals_with
from perpbot.engine.strategy import Strategy
from perpbot.errors import PerpbotError, error_for_exit_code

MAX_TICK_ERRORS = 5


class RunCycle:
    """Drives the strategy: its host, each cycle, its timers, its errors and saved state."""

    def __init__(
        self,
        loaded: LoadedStrategy,
        strategy: Strategy | None,
        *,
        run_id: str,
        process: ProcessHost | None,
        stop_event: asyncio.Event,
        events: EventFeed,
        kill_state: Callable[[], Any],
        fatal: Callable[[PerpbotError], None],
        ledger: Ledger,
        journal: RunJournal,
        output: RunOutput,
    ) -> None:
        self._loaded = loaded
        self._config = loaded.config.strategy
        self._strategy = strategy  # given: tests hand a Python object (runs in a thread)
        self._run_id = run_id
        self._process = process  # isolation = "process": started (and ready) by the caller
        self._stop = stop_event
        self._events = events  # the strategy's callbacks (on_fill, ...), from the ledger
        self._kill_state = kill_state
        self._fatal = fatal  # stops the run with this error (the first one wins)
        self._ledger = ledger
        self._journal = journal
        self._output = output
        self.host: StrategyHost | None = None  # set once the strategy started
        self.saved = Saved()  # what the last run kept (loaded before on_start)
        self._saved_at = 0.0
        self._next_timer: float | None = None  # epoch s: when the strategy's next timer is due
        self._tick_errors = 0

    async def start(self, context: Context) -> bool:
        """The host, then ``on_start`` with the saved state; False when the run must stop."""
        self._events.prime()
        self.host = self._start_host(context)
        self.saved = load_saved(self._config.name)
        saved = self.saved.state
        self._saved_at = time.monotonic()
        return await self._call("on_start", lambda h: h.start(saved), fatal=True)

    async def ticks(self, before_tick: Callable[[], Awaitable[bool]]) -> None:
        """Tick until the run stops (or the strategy makes it stop). ``before_tick`` says
        whether the run's state is current: if not, the strategy's tick is skipped (its
        events and due timers are still delivered)."""
        while not self._stop.is_set():
            t0 = time.monotonic()
            current = await before_tick()
            if self._stop.is_set():
                break
            if not await self._cycle(tick=current):
                break
            await self._persist_if_due()
            if not await self._wait_next_tick(t0 + self._config.tick_interval):
                break

    def _start_host(self, context: Context) -> StrategyHost:
        """A strategy instance given (tests that hand it Python objects): a thread of this
        process. Otherwise its own process (perpbot run starts it before connecting)."""
        if self._strategy is not None:
            strategy_file = self._loaded.resolve(self._config.file)
            return ThreadHost(self._strategy, context, strategy_file)
        if self._process is None:
            self._process = ProcessHost(self._loaded, self._run_id)
        self._process.attach(context)
        exposed = self._process.exposure()  # (said once the run has passed its start checks)
        if exposed:
            self._output.warn(exposed)
        return self._process

    async def _cycle(self, *, tick: bool) -> bool:
        """One cycle: the events so far, due timers, and on_tick when ``tick`` and the kill
        switch does not stand (as of the same drain that told the strategy of it, so the
        two always agree: halt pauses; the other levels stop the run)."""
        events = self._events.drain()
        tick = tick and not self._events.kill_standing
        if not events and not tick and not self._timer_due():
            return True
        return await self._call("on_tick", lambda h: h.cycle(events, tick))

    def _timer_due(self) -> bool:
        return self._next_timer is not None and self._next_timer <= time.time()

    async def _wait_next_tick(self, next_tick: float) -> bool:
        """Until the next tick (monotonic), running timer cycles as timers fall due; False
        when the run must stop."""
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_tick:
                return True
            wake = next_tick
            if self._next_timer is not None:
                wake = min(wake, now + max(self._next_timer - time.time(), 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), max(wake - now, 0.0))
            if self._stop.is_set():
                return False
            timer = self._timer_due() and self._kill_state() is None
            if timer and not await self._cycle(tick=False):
                return False
        return False

    async def _call(
        self, callback: str, send: Callable[[StrategyHost], Any], *, fatal: bool = False
    ) -> bool:
        """One message to the strategy's runtime; False when the run must stop.

        An error in ``on_start`` (or ``on_load``) stops the run (exit 1): a strategy that
        could not set itself up must not trade. An error in any other callback is reported
        (file and line) and the run goes on, up to MAX_TICK_ERRORS cycles in a row.
        """
        assert self.host is not None
        fut = asyncio.wrap_future(send(self.host))
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({fut, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if fut not in done:  # stopping while the strategy is busy (or hung): leave it
            # behind; its outcome (often StrategyStopped) is read when it lands, so asyncio
            # does not print "Future exception was never retrieved" with a traceback
            fut.add_done_callback(lambda f: f.cancelled() or f.exception())
            return False
        exc = fut.exception()
        if exc is not None:  # the host itself failed (a crashed strategy process)
            self._fatal(PerpbotError(f"strategy {callback} failed: {exc}"))
            return False
        outcome: Outcome = fut.result()
        self._next_timer = outcome.get("next_timer")
        errors = outcome.get("errors") or []
        for e in errors:
            if e.get("stopped"):
                return False
            if e.get("fatal"):
                f = e["fatal"]
                self._fatal(error_for_exit_code(f["message"], f["exit_code"], f.get("code")))
                return False
        if not errors:
            self._tick_errors = 0
            return True
        described = self.told_errors(outcome)
        if fatal:
            self._fatal(PerpbotError(f"{described}; the run stops before its first tick"))
            return False
        self._tick_errors += 1
        if self._tick_errors >= MAX_TICK_ERRORS:
            self._fatal(
                PerpbotError(
                    f"strategy failed {self._tick_errors} times in a row; last error: {described}"
                )
            )
            return False
        return True

    def told_errors(self, outcome: Outcome) -> str:
        """Each strategy error as one line naming the strategy file and line (the last is
        returned); the strategy's own frames go to the run folder (strategy_errors.jsonl)
        and, under --verbose, to stderr."""
        line = ""
        for e in outcome.get("errors") or []:
            if "error" not in e:
                continue
            line = e["error"]
            with contextlib.suppress(OSError):
                self._journal.strategy_error(
                    {"ts": time.time(), "callback": e["callback"], "error": line,
                     "traceback": e.get("traceback", "")}
                )  # fmt: skip
            if os.environ.get("PERPBOT_VERBOSE") and e.get("traceback"):
                self._output.warn(e["traceback"].rstrip())
            self._output.note(line)
        return line

    # -- the strategy's saved state (perpbot.engine.saved) ----------------------------------
    async def _persist_if_due(self) -> None:
        if time.monotonic() - self._saved_at < self._config.save_interval_s:
            return
        self._saved_at = time.monotonic()
        assert self.host is not None
        if not self.host.busy:
            outcome = await asyncio.wrap_future(self.host.save())
            self.told_errors(outcome)
            self.persist(outcome.get("saved"))

    def persist(self, state: Any = None) -> None:
        """Keep what on_save returned (None: keep the last one) and the strategy's totals
        (atomically, per strategy name: perpbot.engine.saved)."""
        if state is not None:
            problem = check_state(state)
            if problem:
                self._output.warn(problem)
            else:
                self.saved.state = state
        try:
            store_saved(self._config.name, self._run_id, self.saved.state, self.totals())
        except OSError as exc:
            self._output.warn(f"saving the strategy's state failed: {type(exc).__name__}: {exc}")

    def totals(self) -> dict[str, float]:
        """The strategy's ledger over all its runs, this one included."""
        return totals_with(self.saved.totals, self._ledger)
