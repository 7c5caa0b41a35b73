"""The runner: connect, tick, reconcile, stop cleanly.

Threads: the engine's event loop (main thread) owns the guarded client, reconcile, the
status publisher and every watchdog; the strategy runs in a daemon worker thread. A
strategy that hangs or loops therefore never blocks a stop, a kill or the final cancel.

Stop sequence (duration over, Ctrl-C, SIGTERM, kill switch, fatal error): close the
strategy context, let in-flight calls land, cancel this run's open orders, reconcile one
last time, fetch funding, write ``summary.json`` and print the summary.
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
from concurrent.futures import Future
from typing import Any

from perpbot.client.account import AccountView
from perpbot.client.connect import Connection, connect
from perpbot.client.guarded import GuardedClient
from perpbot.client.orders import client_order_id, is_ours
from perpbot.client.request import OrderSpec
from perpbot.client.waits import WaitInterrupted
from perpbot.config import LoadedStrategy
from perpbot.engine.context import Context, Position
from perpbot.engine.journal import RunJournal
from perpbot.engine.ledger import Ledger
from perpbot.engine.output import RunOutput
from perpbot.engine.strategy import OrderRejected, Strategy, StrategyStopped
from perpbot.errors import BadInput, KillSwitchActive, PerpbotError, RiskRejected
from perpbot.events import Decision, Event, EventBus

# Exit codes by stop reason (README: exit codes).
EXIT_OK, EXIT_FAIL, EXIT_KILL, EXIT_INTERRUPTED = 0, 1, 4, 130
MAX_TICK_ERRORS = 5


def new_run_id(strategy: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{strategy}-{uuid.uuid4().hex[:6]}"


class StrategyWorker:
    """One daemon thread that runs strategy callbacks in order.

    Not a ThreadPoolExecutor: its threads are joined at interpreter exit, so a strategy that
    never returns would keep the process alive after the run has stopped.
    """

    def __init__(self) -> None:
        self._jobs: list[tuple[Callable[[], Any], Future[Any]]] = []
        self._cv = threading.Condition()
        self.busy = False
        self._thread = threading.Thread(target=self._loop, name="perpbot-strategy", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        fut: Future[Any] = Future()
        with self._cv:
            self._jobs.append((fn, fut))
            self._cv.notify()
        return fut

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._jobs:
                    self._cv.wait()
                fn, fut = self._jobs.pop(0)
                self.busy = True
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)
            finally:
                self.busy = False


class Runner:
    def __init__(
        self,
        loaded: LoadedStrategy,
        strategy: Strategy,
        *,
        output: RunOutput,
        duration: float | None = None,
        run_id: str | None = None,
    ) -> None:
        self.loaded = loaded
        self.config = loaded.config
        self.strategy = strategy
        self.output = output
        self.duration = duration
        self.run_id = run_id or new_run_id(self.config.strategy.name)
        self.bus = EventBus()
        self.ledger = Ledger()
        self.journal = RunJournal(self.run_id)
        self.positions: dict[str, Position] = {}
        self.marks: dict[str, float] = {}
        self.mark_times: dict[str, float] = {}  # epoch s of each mark price (exchange time)
        self.equity: float | None = None
        self.start_equity: float | None = None
        self.peak_equity: float | None = None
        self.started = time.time()
        self.start_ms = int(self.started * 1000)
        self.loop: asyncio.AbstractEventLoop
        self.conn: Connection | None = None
        self.ctx: Context | None = None
        self.worker = StrategyWorker()
        self.stop_event: asyncio.Event
        self.end_reason = "completed"
        self.exit_code = EXIT_OK
        self.fatal: PerpbotError | None = None
        self._seq = 0
        self._inflight = 0
        self._tick_errors = 0
        # Extension points: concerns add themselves without the runner knowing them.
        self.tick_providers: list[Callable[[], dict[str, Any]]] = []
        self.background: list[Callable[[Runner], Coroutine[Any, Any, None]]] = []
        self.on_connected: list[Callable[[Runner], Awaitable[None]]] = []
        self.before_stop: list[Callable[[Runner], Awaitable[None]]] = []
        self.after_tick: list[Callable[[Runner, dict[str, Any]], None]] = []
        self.kill_state_fn: Callable[[], Any] = lambda: None
        self.summary_extras: dict[str, Any] = {}
        # after_stop: sync hooks run last, after the exchange is closed (the signed log's close)
        self.after_stop: list[Callable[[Runner], None]] = []

    # -- public -----------------------------------------------------------------------------
    @property
    def client(self) -> GuardedClient:
        assert self.conn is not None
        return self.conn.client

    @property
    def account(self) -> AccountView:
        assert self.conn is not None
        return self.conn.setup.account

    def kill_state(self) -> Any:
        return self.kill_state_fn()

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

    def _in_loop(self) -> bool:
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    async def run(self) -> dict[str, Any]:
        self.loop = asyncio.get_running_loop()
        self.stop_event = asyncio.Event()
        self.bus.subscribe(self._journal_event)
        self.bus.subscribe(self.output.on_event)
        self._install_signals()
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
            }
        )
        try:
            self.conn = await connect(
                cfg.exchange,
                command="run",
                run_id=self.run_id,
                bus=self.bus,
                sim=cfg.sim,
                config=cfg,
                strategy=cfg.strategy.name,
                base_dir=self.loaded.path.parent,
                setup_hook=self._setup_hook,
            )
            for hook in self.on_connected:
                await hook(self)
            self._check_symbols()
            return await self._main()
        finally:
            if self.conn is not None:
                await self.conn.close()
            self.journal.close()
            for after in self.after_stop:
                try:
                    after(self)
                except Exception as exc:
                    self.output.warn(f"stop hook failed: {type(exc).__name__}: {exc}")

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

    def _setup_hook(self, setup: Any) -> None:
        setup.extras["runner"] = self

    # -- main loop --------------------------------------------------------------------------
    async def _main(self) -> dict[str, Any]:
        cfg = self.config
        self.ctx = Context(self)
        where = cfg.exchange.url or ("embedded simulator" if cfg.exchange.id == "sim" else "")
        self.output.start(
            f"perpbot run {self.run_id}: {cfg.strategy.name} on {cfg.exchange.id} {where}".strip()
        )
        tasks = [asyncio.create_task(fn(self)) for fn in self.background]
        if self.duration is not None:
            tasks.append(asyncio.create_task(self._duration_timer(self.duration)))
        try:
            await self._reconcile_unless_killed()
            self.start_equity = self.equity
            if await self._strategy_call(self.strategy.on_start):
                while not self.stop_event.is_set():
                    t0 = time.monotonic()
                    await self._reconcile_unless_killed()
                    self._publish_tick()
                    if self.stop_event.is_set():
                        break
                    if self.kill_state() is not None:
                        pass  # the kill switch stands: no tick (halt pauses; others stop)
                    elif not await self._strategy_call(self.strategy.on_tick):
                        break
                    delay = cfg.strategy.tick_interval - (time.monotonic() - t0)
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self.stop_event.wait(), max(delay, 0.0))
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
        return await self._shutdown()

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

    async def _strategy_call(self, fn: Callable[[Context], None]) -> bool:
        """Run a strategy callback in the worker; False when the run must stop."""
        assert self.ctx is not None
        ctx = self.ctx
        fut = asyncio.wrap_future(self.worker.submit(lambda: fn(ctx)))
        stop = asyncio.ensure_future(self.stop_event.wait())
        try:
            done, _ = await asyncio.wait({fut, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if fut not in done:
            return False  # stopping while the strategy is busy (or hung): leave it behind
        exc = fut.exception()
        if exc is None:
            self._tick_errors = 0
            return True
        if isinstance(exc, StrategyStopped):
            return False
        if isinstance(exc, PerpbotError) and exc.exit_code in (2, 3, 4):
            self._fatal(exc)
            return False
        self._tick_errors += 1
        self.output.note(f"strategy error in {fn.__name__}: {type(exc).__name__}: {exc}")
        if self._tick_errors >= MAX_TICK_ERRORS:
            self._fatal(
                PerpbotError(
                    f"strategy failed {self._tick_errors} times in a row; last error: "
                    f"{type(exc).__name__}: {exc}"
                )
            )
            return False
        return True

    def _fatal(self, exc: PerpbotError) -> None:
        if self.fatal is None:
            self.fatal = exc
            reason = "kill switch" if exc.exit_code == EXIT_KILL else "error"
            self.request_stop(reason, exc.exit_code)

    # -- calls from the context (engine loop) -------------------------------------------------
    async def guarded(self, coro: Coroutine[Any, Any, Any]) -> Any:
        self._inflight += 1
        try:
            return await coro
        finally:
            self._inflight -= 1

    def next_client_id(self) -> str:
        cid = client_order_id(self.run_id, self.config.strategy.name, self._seq)
        self._seq += 1
        return cid

    async def place(self, spec: OrderSpec) -> dict[str, Any]:
        """Place an order for the strategy; refusals become OrderRejected."""
        import ccxt

        if spec.amount is None or spec.amount <= 0:
            self.ledger.reject("BAD_AMOUNT")
            raise OrderRejected("BAD_AMOUNT", f"order amount must be > 0, got {spec.amount}")
        if spec.type == "limit" and (spec.price is None or spec.price <= 0):
            self.ledger.reject("BAD_PRICE")
            raise OrderRejected("BAD_PRICE", f"limit price must be > 0, got {spec.price}")
        if not spec.client_order_id:
            spec.client_order_id = self.next_client_id()
        try:
            order = await self.client.create_order(spec)
        except (RiskRejected, KillSwitchActive) as exc:  # refused before it left: the
            self.ledger.reject(exc.code or "RISK")  # strategy may catch it (a halt goes on)
            raise OrderRejected(exc.code or "RISK", exc.message) from None
        except (ccxt.InvalidOrder, ccxt.InsufficientFunds, ccxt.BadRequest) as exc:
            code = f"EXCHANGE_{type(exc).__name__}"
            sentence = f"the exchange refused the order: {_exchange_message(exc)}"
            self.ledger.reject(code)
            self.bus.publish(
                Decision(
                    "exchange",
                    "reject",
                    code,
                    sentence,
                    {"symbol": spec.symbol, "client_order_id": spec.client_order_id},
                )
            )
            raise OrderRejected(code, sentence) from None
        self.ledger.placed(spec, order)
        self.account.order_placed(order)
        return order

    async def cancel(self, order: dict[str, Any] | str, symbol: str | None) -> Any:
        import ccxt

        if isinstance(order, dict):
            cid = order.get("clientOrderId")
            oid = order.get("id")
            symbol = symbol or order.get("symbol")
        elif order in self.ledger.orders:
            cid, oid = order, self.ledger.orders[order].order_id
            symbol = symbol or self.ledger.orders[order].spec.symbol
        else:
            cid, oid = None, str(order)
        if symbol is None:
            raise OrderRejected("BAD_CANCEL", "cancel needs the order's symbol")
        try:
            result = await self.client.cancel_order(oid, symbol, client_order_id=cid)
        except ccxt.OrderNotFound:
            result = None
        if cid:
            self.ledger.update(cid, result)
        self.account.order_gone(cid, oid)
        return result

    async def cancel_all(self, symbol: str) -> None:
        """Cancel every open order of ``symbol``; the next reconcile learns each final state
        (an order may have filled just before the cancel reached the exchange)."""
        await self.client.cancel_all_orders(symbol)
        self.account.symbol_cleared(symbol)

    async def fetch_own_open_orders(self, symbol: str | None = None) -> list[dict[str, Any]]:
        symbols = [symbol] if symbol else self.config.strategy.symbols
        out: list[dict[str, Any]] = []
        for s in symbols:
            for o in await self.client.fetch_open_orders(s):
                if o.get("clientOrderId") in self.ledger.orders:
                    out.append(o)
        return out

    # -- reconcile --------------------------------------------------------------------------
    async def reconcile(self) -> None:
        """Bring positions, order states, fills and equity up to date with the exchange."""
        symbols = self.config.strategy.symbols
        raw = await self.client.fetch_positions(symbols)
        positions: dict[str, Position] = {}
        for p in raw:
            sym = p.get("symbol")
            if sym not in symbols:
                continue
            info = p.get("info") or {}
            amount = float(info.get("positionAmt") or 0.0)
            if not amount:
                contracts = float(p.get("contracts") or 0.0)
                amount = -contracts if p.get("side") == "short" else contracts
            positions[sym] = Position(
                symbol=sym,
                amount=amount,
                entry_price=_f(p.get("entryPrice")),
                mark_price=_f(p.get("markPrice")),
                unrealized_pnl=float(p.get("unrealizedPnl") or 0.0),
                liquidation_price=_f(p.get("liquidationPrice")),
                leverage=_f(p.get("leverage")),
            )
        self.positions = positions
        account = self.conn.setup.account if self.conn else None
        if account is not None:
            account.set_positions(raw)
        for s in symbols:
            await self._reconcile_orders(s)
            trades = await self.client.fetch_my_trades(
                s, since=self.ledger.last_trade_ms.get(s, self.start_ms)
            )
            for fill in self.ledger.add_trades(s, trades):
                self.journal.fill(fill.to_dict())
                self.output.note(
                    f"fill {fill.symbol} {fill.side} {fill.amount:g} @ {fill.price:g} "
                    f"({'maker' if fill.maker else 'taker'}, fee {fill.fee:.4f})"
                )
            fr = await self.client.fetch_funding_rate(s)
            if fr.get("markPrice"):
                self.marks[s] = float(fr["markPrice"])
                self.mark_times[s] = (fr.get("timestamp") or time.time() * 1000.0) / 1000.0
        balance = await self.client.fetch_balance()
        total = (balance.get("total") or {}).get("USDT")
        if total is not None:
            self.equity = float(total)
            self.account.equity = self.equity
            self.peak_equity = max(self.peak_equity or self.equity, self.equity)

    async def _reconcile_orders(self, symbol: str) -> None:
        import ccxt

        tracked = self.ledger.open_client_ids(symbol)
        fetched_at = time.time()
        listed = await self.client.fetch_open_orders(symbol)
        self.account.set_orders(symbol, listed, fetched_at)  # fills/cancels reach the view
        open_orders = {o.get("clientOrderId"): o for o in listed}
        for cid in tracked:
            if cid in open_orders:
                self.ledger.update(cid, open_orders[cid])
                continue
            try:
                order = await self.client.fetch_order(None, symbol, client_order_id=cid)
            except ccxt.OrderNotFound:
                self.ledger.orders[cid].status = "expired"
                continue
            self.ledger.update(cid, order)

    # -- status -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        unreal = sum(p.unrealized_pnl for p in self.positions.values())
        extras: dict[str, Any] = {}
        for provider in self.tick_providers:
            with contextlib.suppress(Exception):
                extras.update(provider())
        return {
            "run_id": self.run_id,
            "strategy": self.config.strategy.name,
            "uptime_s": time.time() - self.started,
            "positions": {s: p.amount for s, p in self.positions.items()},
            "marks": dict(self.marks),
            "orders": self.ledger.counts(),
            "fills": len(self.ledger.fills),
            "fees": self.ledger.fees,
            "realized_pnl": self.ledger.realized_pnl,
            "unrealized_pnl": unreal,
            "net_pnl": self.ledger.realized_pnl - self.ledger.fees + unreal,
            "equity": self.equity,
            "peak_equity": self.peak_equity,
            "extras": extras,
        }

    def _publish_tick(self) -> None:
        snap = self.snapshot()
        self.output.update(snap)
        record = {
            "ts": time.time(),
            "marks": snap["marks"],
            "positions": {
                s: {
                    "amount": p.amount,
                    "entry": p.entry_price,
                    "upnl": p.unrealized_pnl,
                    "liquidation": p.liquidation_price,
                }
                for s, p in self.positions.items()
            },
            "equity": self.equity,
            "orders": snap["orders"],
            **snap["extras"],
        }
        self.journal.tick(record)
        for hook in self.after_tick:
            try:
                hook(self, snap)
            except Exception as exc:
                self.output.warn(f"tick hook failed: {type(exc).__name__}: {exc}")

    def _journal_event(self, event: Event) -> None:
        if isinstance(event, Decision):
            self.journal.event(event.to_dict())

    # -- stop -------------------------------------------------------------------------------
    async def _shutdown(self) -> dict[str, Any]:
        assert self.ctx is not None
        self.ctx.closed = True
        for _ in range(100):  # let in-flight strategy calls land (at most ~5 s)
            if self._inflight == 0:
                break
            await asyncio.sleep(0.05)
        if not self.worker.busy and self.fatal is None:
            with contextlib.suppress(BaseException):
                ctx = self.ctx
                await asyncio.wait_for(
                    asyncio.wrap_future(self.worker.submit(lambda: self.strategy.on_stop(ctx))),
                    timeout=5.0,
                )
        for hook in self.before_stop:
            try:
                await hook(self)
            except Exception as exc:
                self.output.warn(f"stop hook failed: {type(exc).__name__}: {exc}")
        errors: list[str] = []
        try:
            await self._cancel_everything()
        except Exception as exc:
            errors.append(f"cancelling open orders failed: {type(exc).__name__}: {exc}")
        funding = 0.0
        try:
            await self.reconcile()
            funding = await self._funding()
        except Exception as exc:
            errors.append(f"final reconcile failed: {type(exc).__name__}: {exc}")
        summary = self._summary(funding, errors)
        self.journal.summary(summary)
        self.output.summary(summary)
        for e in errors:
            self.output.warn(e)
        return summary

    async def _cancel_everything(self) -> None:
        """Cancel every open order of this run, and only those.

        Orders are recognised by their client order id (``is_ours``), not only by the
        ledger, so an order whose create was still being resolved when the run stopped is
        cancelled too. Other bots' orders on the same account and symbol are left alone: a
        symbol is cancelled wholesale only when every open order on it is this run's.
        """
        if self._seq == 0:
            return
        name = self.config.strategy.name
        for s in self.config.strategy.symbols:
            open_orders = await self.client.fetch_open_orders(s)
            ours = [o for o in open_orders if is_ours(o.get("clientOrderId"), self.run_id, name)]
            if not ours:
                continue
            if len(ours) == len(open_orders):
                await self.cancel_all(s)
            else:
                for order in ours:
                    await self.cancel(order, s)

    async def _funding(self) -> float:
        total = 0.0
        for s in self.config.strategy.symbols:
            for item in await self.client.fetch_funding_history(s, since=self.start_ms):
                total += float(item.get("amount") or 0.0)
        self.ledger.funding = total
        return total

    def _summary(self, funding: float, errors: list[str]) -> dict[str, Any]:
        ended = time.time()
        unreal = sum(p.unrealized_pnl for p in self.positions.values())
        realized, fees = self.ledger.realized_pnl, self.ledger.fees
        return {
            "run_id": self.run_id,
            "strategy": self.config.strategy.name,
            "exchange": self.config.exchange.id,
            "symbols": self.config.strategy.symbols,
            "started_at": self.started,
            "ended_at": ended,
            "runtime_s": round(ended - self.started, 3),
            "end_reason": self.end_reason,
            "exit_code": self.exit_code,
            "error": self.fatal.message if self.fatal else None,
            "orders": self.ledger.counts(),
            "rejections": dict(self.ledger.rejected),
            "fills": len(self.ledger.fills),
            "maker_fills": sum(1 for f in self.ledger.fills if f.maker),
            "volume": round(self.ledger.volume, 8),
            "fees": round(fees, 8),
            "funding": round(funding, 8),
            "realized_pnl": round(realized, 8),
            "unrealized_pnl": round(unreal, 8),
            "net_pnl": round(realized - fees + funding + unreal, 8),
            "start_equity": self.start_equity,
            "end_equity": self.equity,
            "peak_equity": self.peak_equity,
            "final_positions": {
                s: {
                    "amount": p.amount,
                    "entry_price": p.entry_price,
                    "mark_price": p.mark_price,
                    "unrealized_pnl": p.unrealized_pnl,
                }
                for s, p in self.positions.items()
                if p.amount
            },
            "warnings": errors,
            "run_dir": str(self.journal.dir),
            **self.summary_extras,
        }

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


def _f(x: Any) -> float | None:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if v else None


def _exchange_message(exc: Exception) -> str:
    from perpbot.client.transport import parse_error_body

    body = parse_error_body(str(exc))
    if body and "msg" in body:
        return f"{body.get('msg')} (code {body.get('code')})"
    return type(exc).__name__
