"""The run's lifecycle: what the concerns see of a run, and its start, read top to bottom.

Threads: the engine's event loop (main thread) owns the guarded client, reconcile, the
status publisher and every watchdog; the strategy runs in a daemon worker thread (or its own
process). A strategy that hangs or loops therefore never blocks a stop, a kill or the final
cancel.

``Runner.run`` sequences the parts, each in its own module: connect (perpbot.app.connect)
-> the engine's parts (perpbot.app.engine_parts: orders, reconcile, streams) -> every
start-up check (perpbot.app.start_checks) -> the concerns' ``on_connected`` hooks (the
dead-man countdown arms last) -> background tasks -> first reconcile -> the run cycle
(perpbot.app.cycle: ``on_start``, then the ticks) -> the stop sequence
(perpbot.app.stop.stop_sequence) -> close. Signals: perpbot.app.signals.

The Runner's public members are what the concerns' Protocols (perpbot.engine.hooks), the
strategy's Context (``StrategyBackend``) and the stop sequence use of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from perpbot.app.connect import Connection, connect
from perpbot.app.cycle import RunCycle
from perpbot.app.engine_parts import build_engine
from perpbot.app.signals import install_signals
from perpbot.app.start_checks import check_start
from perpbot.app.stop import release_after_failed_start, stop_sequence
from perpbot.client.account import AccountView
from perpbot.client.guarded import GuardedClient
from perpbot.client.maintenance import MaintenanceWatch, is_maintenance
from perpbot.client.request import OrderSpec
from perpbot.client.retry import classify
from perpbot.client.setup import Credentials
from perpbot.client.waits import Interrupter, WaitInterrupted
from perpbot.client.wire import HttpObservers
from perpbot.config import ExchangeSection, LoadedStrategy
from perpbot.engine.conditional import ConditionalOrders
from perpbot.engine.context import Context
from perpbot.engine.events import EngineEvents
from perpbot.engine.feed import EventFeed
from perpbot.engine.hooks import OrdersLeft
from perpbot.engine.isolation.host import ProcessHost
from perpbot.engine.journal import RunJournal
from perpbot.engine.ledger import Ledger
from perpbot.engine.orders import OrderManager
from perpbot.engine.output import RunOutput
from perpbot.engine.reconcile import Reconciler
from perpbot.engine.report import RunReporter
from perpbot.engine.state import PositionSnapshot, RunState
from perpbot.engine.strategy import Strategy
from perpbot.errors import EXIT_KILL, EXIT_OK, PerpbotError, describe_error
from perpbot.events import Decision, Event, EventBus
from perpbot.streams import StreamFeed


def new_run_id(strategy: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{strategy}-{uuid.uuid4().hex[:6]}"


class Runner:
    def __init__(
        self,
        loaded: LoadedStrategy,
        strategy: Strategy | None,
        *,
        output: RunOutput,
        duration: float | None = None,
        run_id: str | None = None,
        process: ProcessHost | None = None,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.strategy = strategy  # None when it runs in its own process
        self.output = output
        self._duration = duration
        self._process = process  # isolation = "process": started (and ready) by the caller
        self.run_id = run_id or new_run_id(self.config.strategy.name)
        self.bus = EventBus()
        self.ledger = Ledger(own_book=self.config.strategy.share_symbols)
        self.journal = RunJournal(self.run_id)
        self.state = RunState(
            run_id=self.run_id,
            strategy=self.config.strategy.name,
            symbols=list(self.config.strategy.symbols),
        )
        self.started = self.state.started
        self.stop_deadline: float | None = None  # monotonic: the stop's bound, once it began
        self.loop: asyncio.AbstractEventLoop
        self.stop_event = asyncio.Event()
        self._conn: Connection | None = None
        self.orders: OrderManager | None = None
        self.conditional: ConditionalOrders | None = None  # stops, take-profits (algo API)
        self.reconciler: Reconciler | None = None
        self.engine_events = EngineEvents()  # each new fill / order change, once
        self.feed: StreamFeed | None = None  # [exchange] streams: market and user streams
        self.ctx: Context | None = None  # the engine's side of every strategy call
        self.end_reason = "completed"
        self.exit_code = EXIT_OK
        self.fatal: PerpbotError | None = None
        self._stop_ran = False
        self._tick_failures: set[str] = set()  # a failure met every tick: said once per error
        self._failed_ticks = 0  # ticks whose account read failed, since it last worked
        self._maintenance = MaintenanceWatch(self.bus)  # the exchange's window, said once
        # Extension points (perpbot.engine.hooks): filled by perpbot.app.plugins.
        self.on_connected: list[Callable[[Runner], Awaitable[None]]] = []
        self.background: list[Callable[[Runner], Coroutine[Any, Any, None]]] = []
        self.after_tick: list[Callable[[Runner, dict[str, Any]], None]] = []
        self.before_trade: list[Callable[[Runner], Awaitable[str | None]]] = []
        self.before_stop: list[Callable[[Runner], Awaitable[None]]] = []
        self.release: list[Callable[[Runner], Awaitable[str | None]]] = []
        self.left_armed: list[Callable[[OrdersLeft], str | None]] = []
        self.after_stop: list[Callable[[Runner], None]] = []
        self.tick_providers: list[Callable[[], dict[str, Any]]] = []
        self.summary_extras: dict[str, Any] = {}
        self.kill_state_fn: Callable[[], Any] = lambda: None
        self.reporter = RunReporter(
            state=self.state,
            ledger=self.ledger,
            journal=self.journal,
            tick_providers=self.tick_providers,
            summary_extras=self.summary_extras,
            detail_every_s=self.config.disk.tick_detail_s,
        )
        self.cycle = RunCycle(  # the strategy's side: on_start, ticks, timers, saved state
            loaded,
            strategy,
            run_id=self.run_id,
            process=process,
            stop_event=self.stop_event,
            # the strategy's callbacks (on_fill, on_order_update, ...), from the ledger
            events=EventFeed(
                self.ledger, lambda: {**self.state.positions, **self.state.legs}, self.kill_state
            ),
            kill_state=self.kill_state,
            fatal=self._fatal,
            ledger=self.ledger,
            journal=self.journal,
            output=self.output,
        )

    # -- the run, read top to bottom --------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        """Connect, check, arm, trade; every ending then goes through the stop sequence."""
        self.loop = asyncio.get_running_loop()
        self.bus.subscribe(self._journal_event)
        self.bus.subscribe(self.output.on_event)
        install_signals(self.loop, self.request_stop)
        self._write_meta()
        armed = False  # a concern's on_connected may have armed something
        try:
            self._conn = conn = await self._connect()
            # fills and funding are read from the run's start on the exchange's clock
            asked = time.time()
            self.state.exchange_start_ms = int(await conn.client.fetch_time())
            # the exchange's clock less this machine's (half the round trip counted)
            self.state.clock_skew_ms = self.state.exchange_start_ms - int(
                (asked + time.time()) * 500.0
            )
            self._build_engine(conn)
            await check_start(
                self.loaded, conn.client, conn.setup.account
            )  # all pass before anything is armed
            armed = True
            for hook in self.on_connected:  # the kill switch's comes last: it arms
                await hook(self)
            return await self._trade()
        finally:
            if armed and not self._stop_ran:  # the run placed nothing: disarm what was armed
                await release_after_failed_start(self)
            await self._close()

    async def _trade(self) -> dict[str, Any]:
        """Background tasks, the first reconcile, the run cycle; then the stop sequence."""
        cfg = self.config
        self.ctx = Context(self)
        where_ = cfg.exchange.url or ("embedded simulator" if cfg.exchange.id == "sim" else "")
        self.output.start(
            f"perpbot run {self.run_id}: {cfg.strategy.name} on {cfg.exchange.id} {where_}".strip()
        )
        tasks = [asyncio.create_task(fn(self)) for fn in self.background]
        if self._duration is not None:
            tasks.append(asyncio.create_task(self._duration_timer(self._duration)))
        try:
            if self.feed is not None:
                await self.feed.start()  # subscribed first: the reconcile below leaves no gap
            await self._reconcile_unless_killed()
            self.state.start_equity = self.state.equity
            if await self.cycle.start(self.ctx):  # on_start: an error here stops the run
                await self.cycle.ticks(self._before_tick)
        except PerpbotError as exc:
            self._fatal(exc)
        except Exception as exc:  # an engine failure: stop cleanly, report one line
            self._fatal(PerpbotError(f"engine error: {describe_error(exc)}"))
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
        self._stop_ran = True
        return await stop_sequence(self)

    async def _close(self) -> None:
        """The connection, the streams and the run folder's files; then ``after_stop``."""
        # side by side: each ccxt session's close sleeps 250 ms (ccxt's timeout_on_exit)
        await asyncio.gather(
            *(part.close() for part in (self._conn, self.feed) if part is not None)
        )
        for lost in self.journal.close():
            self.output.warn(f"the run file's last lines could not be written: {lost}")
        for after in self.after_stop:
            try:
                after(self)
            except Exception as exc:
                self.output.warn(f"stop hook failed: {type(exc).__name__}: {exc}")

    # -- what the concerns read (each names its part in a Protocol: perpbot.engine.hooks) ---
    @property
    def client(self) -> GuardedClient:
        assert self._conn is not None
        return self._conn.client

    @property
    def account(self) -> AccountView:
        assert self._conn is not None
        return self._conn.setup.account

    @property
    def observers(self) -> HttpObservers:
        """The transport's HTTP hooks (the signed log's wire look hooks in)."""
        assert self._conn is not None
        return self._conn.setup.observers

    @property
    def interrupter(self) -> Interrupter:
        assert self._conn is not None
        return self._conn.setup.interrupter

    @property
    def credentials(self) -> Credentials:
        assert self._conn is not None
        return self._conn.setup.credentials

    @property
    def positions(self) -> dict[str, PositionSnapshot]:
        return self.state.positions

    @property
    def legs(self) -> dict[str, PositionSnapshot]:
        """Hedge mode: each side's position (``RunState.legs``)."""
        return self.state.legs

    @property
    def marks(self) -> dict[str, float]:
        return self.state.marks

    @property
    def start_equity(self) -> float | None:
        return self.state.start_equity

    def kill_state(self) -> Any:
        return self.kill_state_fn()

    def snapshot(self) -> dict[str, Any]:
        return self.reporter.snapshot()

    # the strategy's and the kill switch's order calls: the OrderManager's
    @property
    def _orders(self) -> OrderManager:
        assert self.orders is not None
        return self.orders

    async def guarded(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return await self._orders.guarded(coro)

    async def place(self, spec: OrderSpec) -> dict[str, Any]:
        if self._orders.unsettled.pending:  # judge it against a position with those fills
            await self._settle(spec)
        return await self._orders.place(spec)

    async def _settle(self, spec: OrderSpec) -> None:
        """Bring the position view up to the fills the run's answers reported before
        ``spec`` is judged (perpbot.engine.unsettled). When the position cannot be read
        (the exchange does not answer), ``spec`` cannot be judged: it is refused, and the
        next order tries again (the kill switch's flatten has reads of its own)."""
        try:
            await self.refresh()
        except Exception as exc:
            self._orders.refuse(
                spec,
                "RISK_POSITION_UNSETTLED",
                f"not sent: {spec.side} {spec.amount:g} {spec.symbol}: earlier orders of this "
                "run filled and the position could not be read since "
                f"({describe_error(exc)}), so the order cannot be judged against it",
            )

    async def cancel(self, order: dict[str, Any] | str, symbol: str | None) -> Any:
        return await self._orders.cancel(order, symbol)

    async def cancel_all(self, symbol: str) -> None:
        await self._orders.cancel_all(symbol)

    async def fetch_own_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        if self.feed is not None and self.feed.user_stream_up:
            return self.feed.open_orders(symbol)  # kept current by the user data stream
        return await self._orders.fetch_own_open_orders(symbol)

    async def open_public(self, exchange: ExchangeSection, *, command: str) -> Connection:
        """A market-data-only connection to another venue (an index source), on this run's
        bus, so its calls are logged and limited like the run's own."""
        return await connect(
            exchange,
            command=command,
            run_id=self.run_id,
            bus=self.bus,
            config=self.config,
            strategy=self.config.strategy.name,
            public_only=True,
        )

    async def reconcile(self) -> None:
        assert self.reconciler is not None
        if self.feed is not None:
            await self.feed.reconcile("run")  # serialised with the streams' backfills
        else:
            await self.reconciler.reconcile()

    async def refresh(self) -> None:
        """``ctx.refresh()``: on streams, the stream's state once it has caught up with the
        run's own REST answers (no request); on polling, a reconcile."""
        if self.feed is not None:
            await self.feed.refresh()
        else:
            await self.reconcile()

    # market data the streams hold (None: ask REST)
    def streamed_book(self, symbol: str, limit: int | None) -> dict[str, Any] | None:
        return self.feed.market.order_book(symbol, limit) if self.feed is not None else None

    def streamed_funding(self, symbol: str) -> dict[str, Any] | None:
        return self.feed.market.mark_funding(symbol) if self.feed is not None else None

    # -- how a run is asked to end ----------------------------------------------------------
    def request_stop(self, reason: str, exit_code: int = EXIT_OK) -> None:
        """Ask the run to stop (thread-safe). The first reason wins."""

        def _set() -> None:
            if not self.stop_event.is_set():
                self.end_reason, self.exit_code = reason, exit_code
                self.stop_event.set()

        if threading.current_thread() is threading.main_thread() and self._in_loop():
            _set()
        else:
            self.loop.call_soon_threadsafe(_set)

    def fail(self, error: PerpbotError) -> None:
        """Stop the run with ``error`` as its outcome (thread-safe). The first one wins."""
        if threading.current_thread() is threading.main_thread() and self._in_loop():
            self._fatal(error)
        else:
            with contextlib.suppress(RuntimeError):  # the loop has closed: the run is over
                self.loop.call_soon_threadsafe(self._fatal, error)

    def _fatal(self, exc: PerpbotError) -> None:
        if self.fatal is None:
            self.fatal = exc
            reason = "kill switch" if exc.exit_code == EXIT_KILL else "error"
            self.request_stop(reason, exc.exit_code)

    def _in_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    # -- the steps ---------------------------------------------------------------------------
    async def _connect(self) -> Connection:
        cfg = self.config
        return await connect(
            cfg.exchange,
            command="run",
            run_id=self.run_id,
            bus=self.bus,
            sim=cfg.sim,
            config=cfg,
            strategy=cfg.strategy.name,
            base_dir=self.loaded.path.parent,
            marks=lambda: self.state.marks,
        )

    def _build_engine(self, conn: Connection) -> None:
        parts = build_engine(
            conn,
            config=self.config,
            run_id=self.run_id,
            state=self.state,
            ledger=self.ledger,
            journal=self.journal,
            output=self.output,
            bus=self.bus,
            events=self.engine_events,
        )
        self.orders, self.conditional = parts.orders, parts.conditional
        self.reconciler, self.feed = parts.reconciler, parts.feed
        if self.reconciler.unplaced is not None:  # fills the run did not place, in status
            self.tick_providers.append(self.reconciler.unplaced.status)
        if self.feed is not None:
            self.tick_providers.append(self.feed.status)

    def _write_meta(self) -> None:
        cfg = self.config
        self.journal.meta(
            {
                "run_id": self.run_id,
                "strategy": cfg.strategy.name,
                "strategy_file": str(self.loaded.path),
                "symbols": cfg.strategy.symbols,
                "exchange": cfg.exchange.id,
                "profile": cfg.exchange.profile,
                "started_at": self.started,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "duration": self._duration,
                # what confined the strategy's process (isolation = "process")
                "confinement": self._process.confinement if self._process is not None else None,
            }
        )

    async def _before_tick(self) -> bool:
        """The run's state brought current (on streams, the feed keeps it so), then the tick
        snapshot: live panel, ticks.jsonl, the concerns' ``after_tick`` hooks, then their
        ``before_trade`` checks (the dead-man countdown armed again if it lapsed). Returns
        whether the strategy may tick.

        When reading the account fails for a reason that passes (a timeout, a 5xx, a dropped
        connection, a 429: the retrier's attempts spent), the run does not end: the tick is
        skipped (no strategy tick, no snapshot, no ``after_tick`` hook: a blind run's
        heartbeat stops) and the read is tried again at the next tick. A run blind for
        longer than the dead-man's patience so stops refreshing the countdown, and the
        exchange cancels its orders; ``[kill] max_consecutive_failures`` ends it when set.
        While the exchange is under maintenance the account is read over REST on streams
        too (the streams are closed and refused): the first read that works ends the
        window, and the run sees what the window cancelled before the strategy trades."""
        if (self.feed is None or self._maintenance.active) and not await self._read_account():
            return False
        snap = self.reporter.snapshot()
        self.output.update(snap)
        line = self.reporter.tick_line(snap)
        if line is not None:
            self.journal.tick(line)
        for hook in self.after_tick:
            try:
                hook(self, snap)
            except Exception as exc:
                self._say_once(f"tick hook failed: {type(exc).__name__}: {exc}")
        for check in self.before_trade:
            why_not = await check(self)
            if why_not is not None:
                self._say_once(f"{why_not}; the strategy's tick is skipped")
                return False
        return True

    async def _read_account(self) -> bool:
        """Reconcile for the tick; False (said once per error) when the read failed for a
        reason that passes. A maintenance answer is said once per window by the watch."""
        try:
            await self._reconcile_unless_killed()
        except Exception as exc:
            if isinstance(exc, PerpbotError) or classify(exc) == "never":
                raise
            self._failed_ticks += 1
            if not is_maintenance(exc):
                self._say_once(
                    f"reading the account failed: {describe_error(exc)}; the strategy's tick "
                    "is skipped and the read tried again at the next tick"
                )
            return False
        if self._failed_ticks:
            self.output.warn(
                f"reading the account works again after {self._failed_ticks} skipped tick(s)"
            )
            self._failed_ticks = 0
        return True

    def _say_once(self, said: str) -> None:
        """A failure met at every tick, said once per distinct error (tried again each tick)."""
        if said not in self._tick_failures:
            self._tick_failures.add(said)
            self.output.warn(f"{said} (said once; tried again every tick)")

    async def _reconcile_unless_killed(self) -> None:
        """Reconcile; when the kill switch cut one of its waits short, skip it (the watchdog
        acts and stops the run, or a halted run tries again at the next tick)."""
        try:
            await self.reconcile()
        except WaitInterrupted:
            if self.kill_state() is None:
                raise

    async def _duration_timer(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.request_stop("duration", EXIT_OK)

    def _journal_event(self, event: Event) -> None:
        if isinstance(event, Decision):
            self.journal.event(event.to_dict())
