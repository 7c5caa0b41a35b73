"""The run's lifecycle: start, signals, the tick loop and the stop sequence.

Threads: the engine's event loop (main thread) owns the guarded client, reconcile, the
status publisher and every watchdog; the strategy runs in a daemon worker thread. A
strategy that hangs or loops therefore never blocks a stop, a kill or the final cancel.

The responsibilities live in perpbot.engine (``OrderManager``: place, cancel, refusals;
``Reconciler``; ``RunReporter``: snapshots, summary; ``RunJournal``); this module only
sequences them. Start: connect -> every start-up check -> the concerns' ``on_connected``
hooks (the dead-man countdown arms last) -> first reconcile -> ``on_start`` -> ticks.
The stop sequence is ``perpbot.app.stop.stop_sequence``: read it top to bottom.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from perpbot.app.connect import Connection, connect
from perpbot.app.stop import stop_sequence
from perpbot.client.account import AccountView
from perpbot.client.guarded import GuardedClient
from perpbot.client.request import OrderSpec
from perpbot.client.setup import Credentials
from perpbot.client.waits import Interrupter, WaitInterrupted
from perpbot.config import ExchangeSection, LoadedStrategy
from perpbot.engine.conditional import ConditionalOrders
from perpbot.engine.context import Context
from perpbot.engine.events import EngineEvents
from perpbot.engine.feed import EventFeed
from perpbot.engine.hooks import OrdersLeft
from perpbot.engine.hosts import Outcome, StrategyHost, ThreadHost
from perpbot.engine.isolation.host import ProcessHost
from perpbot.engine.journal import RunJournal
from perpbot.engine.ledger import Ledger
from perpbot.engine.orders import OrderManager
from perpbot.engine.output import RunOutput
from perpbot.engine.position_mode import read_position_mode
from perpbot.engine.reconcile import Reconciler
from perpbot.engine.report import RunReporter
from perpbot.engine.saved import Saved, check_state, load_saved, store_saved, totals_with
from perpbot.engine.state import PositionSnapshot, RunState
from perpbot.engine.strategy import Strategy
from perpbot.errors import (
    EXIT_INTERRUPTED,
    EXIT_KILL,
    EXIT_OK,
    BadInput,
    PerpbotError,
    error_for_exit_code,
)
from perpbot.events import Decision, Event, EventBus
from perpbot.streams import StreamFeed, make_pro_exchange, streams_enabled

MAX_TICK_ERRORS = 5


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
        self.strategy = strategy
        self.output = output
        self.duration = duration
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
        self.stop_timeout_s = self.config.strategy.stop_timeout_s
        self.stop_deadline: float | None = None  # monotonic: the stop's bound, once it began
        self.loop: asyncio.AbstractEventLoop
        self.stop_event: asyncio.Event
        self.conn: Connection | None = None
        self.orders: OrderManager | None = None
        self.conditional: ConditionalOrders | None = None  # stops, take-profits (algo API)
        self.reconciler: Reconciler | None = None
        self.engine_events = EngineEvents()  # each new fill / order change, once
        self.feed: StreamFeed | None = None  # [exchange] streams: market and user streams
        self.ctx: Context | None = None  # the engine's side of every strategy call
        self.host: StrategyHost | None = None  # where the strategy runs (thread or process)
        self.process = process  # isolation = "process": started (and ready) by the caller
        # the strategy's callbacks (on_fill, on_order_update, ...), from the ledger
        self.strategy_events = EventFeed(
            self.ledger, lambda: {**self.state.positions, **self.state.legs}, self.kill_state
        )
        self._saved_at = 0.0
        self.saved = Saved()  # what the last run kept (loaded before on_start)
        self.end_reason = "completed"
        self.exit_code = EXIT_OK
        self.fatal: PerpbotError | None = None
        self.orders_left: OrdersLeft = {}
        self._tick_errors = 0
        self._next_timer: float | None = None  # epoch s: when the strategy's next timer is due
        self._hooks_started = False  # a concern's on_connected may have armed something
        self.stop_ran = False
        # Extension points (perpbot.engine.hooks): filled by perpbot.app.plugins.
        self.on_connected: list[Callable[[Runner], Awaitable[None]]] = []
        self.background: list[Callable[[Runner], Coroutine[Any, Any, None]]] = []
        self.after_tick: list[Callable[[Runner, dict[str, Any]], None]] = []
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

    # -- what the concerns read (each names its part in a Protocol: perpbot.engine.hooks) ---
    @property
    def client(self) -> GuardedClient:
        assert self.conn is not None
        return self.conn.client

    @property
    def account(self) -> AccountView:
        assert self.conn is not None
        return self.conn.setup.account

    @property
    def interrupter(self) -> Interrupter:
        assert self.conn is not None
        return self.conn.setup.interrupter

    @property
    def credentials(self) -> Credentials:
        assert self.conn is not None
        return self.conn.setup.credentials

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
    def mark_times(self) -> dict[str, float]:
        return self.state.mark_times

    @property
    def equity(self) -> float | None:
        return self.state.equity

    @property
    def start_equity(self) -> float | None:
        return self.state.start_equity

    @property
    def peak_equity(self) -> float | None:
        return self.state.peak_equity

    def kill_state(self) -> Any:
        return self.kill_state_fn()

    def snapshot(self) -> dict[str, Any]:
        return self.reporter.snapshot()

    # the strategy's and the kill switch's order calls: the OrderManager's
    async def guarded(self, coro: Coroutine[Any, Any, Any]) -> Any:
        assert self.orders is not None
        return await self.orders.guarded(coro)

    async def place(self, spec: OrderSpec) -> dict[str, Any]:
        assert self.orders is not None
        return await self.orders.place(spec)

    async def cancel(self, order: dict[str, Any] | str, symbol: str | None) -> Any:
        assert self.orders is not None
        return await self.orders.cancel(order, symbol)

    async def cancel_all(self, symbol: str) -> None:
        assert self.orders is not None
        await self.orders.cancel_all(symbol)

    def adopt(self, order: dict[str, Any]) -> None:
        """Make an earlier run's order this run's own (perpbot.kill.sweep)."""
        assert self.orders is not None
        self.orders.adopt(order)

    def is_own_order(self, order: dict[str, Any]) -> bool:
        """Placed (or adopted) by this run, by client id."""
        return self.orders is not None and self.orders.is_ours(order)

    async def cancel_account_wide(self, symbol: str) -> Any:
        """Every order on ``symbol`` of the account: only the kill switch's account level."""
        result = await self.client.cancel_all_orders(symbol)
        self.account.symbol_cleared(symbol)
        return result

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

    async def fetch_own_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        assert self.orders is not None
        if self.feed is not None and self.feed.user_stream_up:
            return self.feed.open_orders(symbol)  # kept current by the user data stream
        return await self.orders.fetch_own_open_orders(symbol)

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

    # -- market data the streams hold (None: ask REST) --------------------------------------
    def streamed_book(self, symbol: str, limit: int | None) -> dict[str, Any] | None:
        return self.feed.market.order_book(symbol, limit) if self.feed is not None else None

    def streamed_funding(self, symbol: str) -> dict[str, Any] | None:
        return self.feed.market.mark_funding(symbol) if self.feed is not None else None

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

    def _in_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    # -- start ------------------------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        self.bus.subscribe(self._journal_event)
        self.bus.subscribe(self.output.on_event)
        self._install_signals()
        self._write_meta()
        try:
            self.conn = await self._connect()
            # fills and funding are read from the run's start on the exchange's clock
            self.state.exchange_start_ms = int(await self.conn.client.fetch_time())
            self._build_engine(self.conn)
            self._check_symbols()  # every start-up check passes before anything is armed
            await read_position_mode(self.conn.client, self.conn.setup.account, self.config)
            self._hooks_started = True
            for hook in self.on_connected:  # the kill switch's comes last: it arms
                await hook(self)
            return await self._main()
        finally:
            if self._hooks_started and not self.stop_ran:
                await self._release_after_failed_start()
            if self.conn is not None:
                await self.conn.close()
            if self.feed is not None:
                await self.feed.close()
            for lost in self.journal.close():
                self.output.warn(f"the run file's last lines could not be written: {lost}")
            for after in self.after_stop:
                try:
                    after(self)
                except Exception as exc:
                    self.output.warn(f"stop hook failed: {type(exc).__name__}: {exc}")

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
        self.orders = OrderManager(
            client=conn.client,
            ledger=self.ledger,
            account=conn.setup.account,
            bus=self.bus,
            run_id=self.run_id,
            strategy=self.state.strategy,
            symbols=self.state.symbols,
        )
        observers = getattr(conn.client.exchange, "perpbot_observers", None)
        if observers is not None:  # once the stop cancels, no create leaves (stop.py step 3)
            observers.add_before(self.orders.wire_look, last=True)
        self.conditional = ConditionalOrders(orders=self.orders, risk=self.config.risk)
        self.reconciler = Reconciler(
            client=conn.client,
            state=self.state,
            ledger=self.ledger,
            account=conn.setup.account,
            journal=self.journal,
            output=self.output,
            events=self.engine_events,
            own_only=self.orders.is_ours if self.config.strategy.share_symbols else None,
        )
        if streams_enabled(self.config.exchange):
            self.feed = StreamFeed(
                exchange=make_pro_exchange(
                    self.config.exchange, self.config.limits, conn.client, conn.setup.base_url
                ),
                reconciler=self.reconciler,
                bus=self.bus,
                symbols=self.state.symbols,
                stale_after_s=self.config.exchange.stream_stale_s,
                reconcile_interval=self.config.exchange.reconcile_interval,
                seed=self.config.sim.seed if self.config.sim else 0,
            )
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
                "duration": self.duration,
                # what confined the strategy's process (isolation = "process")
                "confinement": self.process.confinement if self.process is not None else None,
            }
        )

    def _check_symbols(self) -> None:
        markets = self.client.markets
        for i, symbol in enumerate(self.config.strategy.symbols):
            if symbol not in markets:
                close = (
                    sorted(m for m in markets if m.split("/")[0] in symbol)[:3]
                    or sorted(markets)[:3]
                )
                raise BadInput(
                    f"{self.loaded.path}: [strategy] symbols[{i}]: got {symbol!r}, expected a "
                    f"symbol {self.config.exchange.id} lists (e.g. {', '.join(close)})"
                )

    async def _release_after_failed_start(self) -> None:
        """A start that failed after the concerns attached: disarm what they armed (the
        run placed no order, so nothing of its own needs the countdown)."""
        self.stop_deadline = time.monotonic() + self.stop_timeout_s
        for hook in self.release:
            try:
                undone = await asyncio.wait_for(hook(self), self.stop_timeout_s)
            except Exception as exc:
                self.output.warn(f"releasing after a failed start: {type(exc).__name__}: {exc}")
            else:
                if undone:
                    self.output.warn(undone)

    # -- the tick loop ----------------------------------------------------------------------
    async def _main(self) -> dict[str, Any]:
        cfg = self.config
        self.ctx = Context(self)
        where_ = cfg.exchange.url or ("embedded simulator" if cfg.exchange.id == "sim" else "")
        self.output.start(
            f"perpbot run {self.run_id}: {cfg.strategy.name} on {cfg.exchange.id} {where_}".strip()
        )
        tasks = [asyncio.create_task(fn(self)) for fn in self.background]
        if self.duration is not None:
            tasks.append(asyncio.create_task(self._duration_timer(self.duration)))
        try:
            if self.feed is not None:
                await self.feed.start()  # subscribed first: the reconcile below leaves no gap
            await self._reconcile_unless_killed()
            self.state.start_equity = self.state.equity
            self.strategy_events.prime()
            self.host = self._start_host(self.ctx)
            self.saved = load_saved(cfg.strategy.name)
            saved = self.saved.state
            self._saved_at = time.monotonic()
            if await self._strategy_call("on_start", lambda h: h.start(saved), fatal=True):
                while not self.stop_event.is_set():
                    t0 = time.monotonic()
                    if self.feed is None:  # on streams, the feed keeps the state current
                        await self._reconcile_unless_killed()
                    self._publish_tick()
                    if self.stop_event.is_set():
                        break
                    if not await self._cycle(tick=True):
                        break
                    await self._persist_if_due()
                    if not await self._wait_next_tick(t0 + cfg.strategy.tick_interval):
                        break
        except PerpbotError as exc:
            self._fatal(exc)
        except Exception as exc:  # an engine failure: stop cleanly, report one line
            self._fatal(PerpbotError(f"engine error: {type(exc).__name__}: {exc}"))
        finally:
            for t in tasks:
                t.cancel()
            for t in tasks:
                with contextlib.suppress(BaseException):
                    await t
        return await stop_sequence(self)

    def _start_host(self, context: Context) -> StrategyHost:
        """A strategy instance given (tests that hand it Python objects): a thread of this
        process. Otherwise its own process (perpbot run starts it before connecting)."""
        if self.strategy is not None:
            strategy_file = self.loaded.resolve(self.config.strategy.file)
            return ThreadHost(self.strategy, context, strategy_file)
        if self.process is None:
            self.process = ProcessHost(self.loaded, self.run_id)
        self.process.attach(context)
        exposed = self.process.exposure()  # (said once the run has passed its start checks)
        if exposed:
            self.output.warn(exposed)
        return self.process

    async def _cycle(self, *, tick: bool) -> bool:
        """One cycle: the events so far, due timers, and on_tick when ``tick`` and the kill
        switch does not stand (as of the same drain that told the strategy of it, so the
        two always agree: halt pauses; the other levels stop the run)."""
        events = self.strategy_events.drain()
        tick = tick and not self.strategy_events.kill_standing
        if not events and not tick and not self._timer_due():
            return True
        return await self._strategy_call("on_tick", lambda h: h.cycle(events, tick))

    def _timer_due(self) -> bool:
        return self._next_timer is not None and self._next_timer <= time.time()

    async def _wait_next_tick(self, next_tick: float) -> bool:
        """Until the next tick (monotonic), running timer cycles as timers fall due; False
        when the run must stop."""
        while not self.stop_event.is_set():
            now = time.monotonic()
            if now >= next_tick:
                return True
            wake = next_tick
            if self._next_timer is not None:
                wake = min(wake, now + max(self._next_timer - time.time(), 0.0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), max(wake - now, 0.0))
            if self.stop_event.is_set():
                return False
            timer = self._timer_due() and self.kill_state() is None
            if timer and not await self._cycle(tick=False):
                return False
        return False

    async def _persist_if_due(self) -> None:
        if time.monotonic() - self._saved_at < self.config.strategy.save_interval_s:
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
                self.output.warn(problem)
            else:
                self.saved.state = state
        try:
            store_saved(self.config.strategy.name, self.run_id, self.saved.state, self.totals())
        except OSError as exc:
            self.output.warn(f"saving the strategy's state failed: {type(exc).__name__}: {exc}")

    def totals(self) -> dict[str, float]:
        """The strategy's ledger over all its runs, this one included."""
        return totals_with(self.saved.totals, self.ledger)

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

    async def _strategy_call(
        self, callback: str, send: Callable[[StrategyHost], Any], *, fatal: bool = False
    ) -> bool:
        """One message to the strategy's runtime; False when the run must stop.

        An error in ``on_start`` (or ``on_load``) stops the run (exit 1): a strategy that
        could not set itself up must not trade. An error in any other callback is reported
        (file and line) and the run goes on, up to MAX_TICK_ERRORS cycles in a row.
        """
        assert self.host is not None
        fut = asyncio.wrap_future(send(self.host))
        stop = asyncio.ensure_future(self.stop_event.wait())
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
                self.journal.strategy_error(
                    {"ts": time.time(), "callback": e["callback"], "error": line,
                     "traceback": e.get("traceback", "")}
                )  # fmt: skip
            if os.environ.get("PERPBOT_VERBOSE") and e.get("traceback"):
                self.output.warn(e["traceback"].rstrip())
            self.output.note(line)
        return line

    def _fatal(self, exc: PerpbotError) -> None:
        if self.fatal is None:
            self.fatal = exc
            reason = "kill switch" if exc.exit_code == EXIT_KILL else "error"
            self.request_stop(reason, exc.exit_code)

    def _publish_tick(self) -> None:
        snap = self.reporter.snapshot()
        self.output.update(snap)
        line = self.reporter.tick_line(snap)
        if line is not None:
            self.journal.tick(line)
        for hook in self.after_tick:
            try:
                hook(self, snap)
            except Exception as exc:
                self.output.warn(f"tick hook failed: {type(exc).__name__}: {exc}")

    def _journal_event(self, event: Event) -> None:
        if isinstance(event, Decision):
            self.journal.event(event.to_dict())

    # -- signals ----------------------------------------------------------------------------
    def _install_signals(self) -> None:
        interrupts = {"n": 0}

        def on_int() -> None:
            interrupts["n"] += 1
            if interrupts["n"] > 1:  # a second Ctrl-C: stop waiting for a clean stop
                os._exit(EXIT_INTERRUPTED)
            self.request_stop("interrupted", EXIT_INTERRUPTED)

        with contextlib.suppress(NotImplementedError, RuntimeError):
            self.loop.add_signal_handler(signal.SIGINT, on_int)
            self.loop.add_signal_handler(
                signal.SIGTERM, lambda: self.request_stop("terminated", EXIT_OK)
            )
