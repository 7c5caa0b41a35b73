"""StreamFeed: the run's market and account state from ccxt.pro streams, REST as safety net.

One task per stream, on the engine's event loop:

    mark <symbol>      watch_mark_price (1 s cadence): state.marks/mark_times, ctx.funding
    book <symbol>      watch_order_book (a local book synced the documented way by ccxt.pro)
    user orders        watch_orders: the ledger's order states, the account view's open orders
    user trades        watch_my_trades: fills, through Reconciler.record_trades (deduplicated
                       against REST by trade id; published as perpbot.engine.events.FillEvent)
    user positions     watch_positions: state.positions, the account view's positions
    user balance       watch_balance: equity

REST stays the truth: the run reconciles at start (after the user stream is connected, so
nothing falls between), after every loss of the user stream once the new connection is up
(the gap is backfilled: fills the stream missed come from REST, once), and every
``[exchange] reconcile_interval`` seconds. A periodic reconcile that finds a fill older
than ``GAP_GRACE_S`` that the stream never delivered treats the user stream as broken
(STREAM_GAP) and reconnects it.

Health: a stream with a cadence (the mark price) silent for ``stream_stale_s`` is stale
(STREAM_STALE): its connection is dropped and reopened; meanwhile the market data it fed
ages like a stale REST price does (``[kill] max_price_age_s`` trips on the mark's age, and
the context falls back to REST reads once the cached data is older than ``stream_stale_s``).
The user stream has no cadence; its silent stall is found from the book's evidence: when
the book shows one of the run's resting orders gone and the user stream has not said so
within ``OWED_GRACE_S`` (perpbot.streams.evidence), it is reconnected and backfilled
(STREAM_USER_SILENT). Reconnects wait with backoff and jitter. Every disconnect,
reconnect, backfill, gap and staleness is a Decision (layer ``streams``) with a reason code
and a sentence: the signed log and ``status`` carry them, and ``status`` shows each
stream's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from typing import Any

import ccxt

from perpbot.client.account import AccountView
from perpbot.client.position_side import leg_key
from perpbot.engine.reconcile import Reconciler, position_of, position_raw, split_legs
from perpbot.engine.unplaced import trade_of_update
from perpbot.events import Action, Decision, EventBus
from perpbot.streams.evidence import OwedEvents
from perpbot.streams.exchange import forget_listen_key, is_private_url, listen_key
from perpbot.streams.health import Backoff, StreamHealth
from perpbot.streams.market import MarketCache
from perpbot.streams.rotation import RETRY_S, Rotated, connection_age_s, rotate
from perpbot.streams.wire import StreamWire

MARK_CADENCE_S = 1.0  # markPrice@1s
GAP_GRACE_S = 2.0  # a fill younger than this may still be on its way on the stream
UNMATCHED_KEEP_S = 30.0  # a streamed fill of an order whose placement answer is not back yet
CONNECT_WAIT_S = 10.0
REFRESH_WAIT_S = 2.0
WATCHDOG_S = 0.2


def _position_key(p: dict[str, Any]) -> tuple[Any, ...]:
    """What tells two cached positions of a symbol apart."""
    return (p.get("timestamp"), p.get("side"), p.get("contracts"), p.get("entryPrice"))


class StreamFeed:
    def __init__(
        self,
        *,
        exchange: Any,
        wire: StreamWire,
        reconciler: Reconciler,
        bus: EventBus,
        symbols: list[str],
        stale_after_s: float,
        reconcile_interval: float,
        rotate_after_s: float = 84_600.0,
        keepalive_s: float = 1200.0,
        seed: int = 0,
    ) -> None:
        self.ex = exchange
        self.wire = wire  # what the exchange was handed; it counts what it leaves out there
        self.reconciler = reconciler
        self.state = reconciler.state
        self.ledger = reconciler.ledger
        self.account: AccountView = reconciler.account
        self.bus = bus
        self.symbols = list(symbols)
        self.stale_after_s = stale_after_s
        self.reconcile_interval = reconcile_interval
        self.rotate_after_s = rotate_after_s
        self.keepalive_s = keepalive_s
        self.market = MarketCache(max_age_s=stale_after_s)
        self.health: dict[str, StreamHealth] = {}
        self.rng = random.Random(seed)
        self.started = time.monotonic()
        self.counters = {
            "disconnects": 0,
            "reconnects": 0,
            "stale": 0,
            "user_silent": 0,
            "backfills": 0,
            "backfilled_fills": 0,
            "gaps": 0,
            "stream_fills": 0,
            "reconciles": 0,
            "rotations": 0,
            # ACCOUNT_UPDATE positions delivered out of order (left out as they came in,
            # perpbot.streams.exchange.drop_reordered), and position updates of either
            # source older than one the other applied (RunState.admit): neither applied
            "reordered_positions": 0,
            "stale_positions": 0,
        }
        self._tasks: list[asyncio.Task[None]] = []
        self.recent: deque[dict[str, Any]] = deque(maxlen=10)  # the last decisions, for status
        self._lock = asyncio.Lock()  # one REST reconcile at a time
        self._gap_epoch = 0  # bumped at each loss of the user stream
        # the feed closed the user stream itself (silent, stalled, its listenKey gone): it is
        # back only once it delivers an event, not merely once it is connected again
        self._user_must_speak = False
        self._filled_epoch = 0  # the epoch the last backfill covered
        self._last_reconcile = time.monotonic()
        self._unmatched: list[tuple[float, str, dict[str, Any]]] = []
        # client id -> (when, newest stream update) of an order not in the ledger yet
        self._unmatched_orders: dict[str, tuple[float, dict[str, Any]]] = {}
        self._trades_seen: set[str] = set()  # trade ids the trades loop has applied
        self._orders_seen: dict[str, tuple[Any, Any]] = {}  # order id -> (status, filled)
        self._wallet: float | None = None  # wallet balance: equity less unrealised PnL
        self._stream_filled: dict[str, float] = {}  # client id -> cumulative filled (stream)
        # when (monotonic) a fill streamed whose position update has not come yet, else None
        self._position_due: float | None = None
        self._positions_at = 0.0  # when the last position update was applied (monotonic)
        self._positions_ms = 0  # the exchange's time of the newest position update applied
        self._positions_read: dict[str, tuple[Any, ...]] = {}  # what _watch_positions gave
        self.owed = OwedEvents()  # the book's evidence that the user stream owes an event
        self._book_seen: dict[str, float] = {}  # symbol -> time.time() of its last book event
        self._rotating: set[str] = set()  # connection URLs being rotated
        self._rotate_retry: dict[str, float] = {}  # URL -> monotonic time of the next attempt

    # -- life -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Open every stream; returns once the user stream is connected (or after a wait),
        so that the first REST reconcile, made next, covers everything before it."""
        ex = self.ex
        for s in self.symbols:
            self._add(f"mark {s}", False, MARK_CADENCE_S, lambda s=s: ex.watch_mark_price(s),
                      lambda t, s=s: self._on_mark(s, t))  # fmt: skip
            self._add(f"book {s}", False, None, lambda s=s: ex.watch_order_book(s),
                      lambda ob, s=s: self._on_book(s, ob))  # fmt: skip
        self._add("user orders", True, None, ex.watch_orders, self._on_orders)
        self._add("user trades", True, None, ex.watch_my_trades, self._on_trades)
        self._add("user positions", True, None, self._watch_positions, self._on_positions)
        self._add("user balance", True, None, ex.watch_balance, self._on_balance)
        self._tasks.append(asyncio.create_task(self._watchdog(), name="streams watchdog"))
        self._tasks.append(asyncio.create_task(self._keep_alive(), name="listenKey keepalive"))
        await self._wait_connected(private=True, timeout=CONNECT_WAIT_S)
        self._last_reconcile = time.monotonic()

    async def close(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(BaseException):
                await t
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.ex.close()

    # -- what the run reads -----------------------------------------------------------------
    @property
    def user_stream_up(self) -> bool:
        users = [h for h in self.health.values() if h.private]
        return bool(users) and all(h.down_since is None for h in users)

    def open_orders(self, symbol: str | None) -> list[dict[str, Any]]:
        """This run's open orders as the stream (and REST, and each answer) left them."""
        out = []
        for o in self.account.open_orders(symbol):
            if o.inflight or o.client_order_id not in self.ledger.orders:
                continue
            out.append(
                {
                    "id": o.order_id,
                    "clientOrderId": o.client_order_id,
                    "symbol": o.symbol,
                    "side": o.side,
                    "type": o.type,
                    "amount": o.amount,
                    "remaining": o.remaining,
                    "filled": o.amount - o.remaining,
                    "price": o.price,
                    "reduceOnly": o.reduce_only,
                    "postOnly": o.post_only,
                    "status": "open",
                }
            )
        return out

    def status(self) -> dict[str, Any]:
        now = time.monotonic()
        return {
            "streams": {
                "streams": [h.to_dict(now) for h in self.health.values()],
                **self.counters,
                "events": list(self.recent),
            }
        }

    async def reconcile(self, why: str, *, market: bool = True) -> list[Any]:
        """A REST reconcile (serialised with backfills); the fills it found new."""
        async with self._lock:
            return await self._reconcile_locked(why, market=market)

    async def refresh(self) -> None:
        """``ctx.refresh()`` on streams, and the run's settling before an order: wait until
        the user stream has delivered the fills the run's answers reported that the
        position did not include yet (perpbot.engine.unsettled) and the position update
        that follows; then set the account view from the stream's positions. No request is
        made. When the stream is down or does not catch up within ``REFRESH_WAIT_S``, a REST
        reconcile does it instead (STREAM_LAGGING)."""
        unsettled = self.reconciler.unsettled
        answered = dict(unsettled.pending)
        deadline = time.monotonic() + REFRESH_WAIT_S
        while self.user_stream_up and time.monotonic() < deadline:
            if not self._behind(answered):
                self.account.set_positions(self._positions_raw())
                unsettled.settle(answered)
                return
            await asyncio.sleep(0.002)
        if self.user_stream_up:
            self._decide("alert", "STREAM_LAGGING", f"the user stream had not delivered the "
                         f"fills REST answers reported within {REFRESH_WAIT_S:g} s: the "
                         "refresh reads REST instead", behind=self._behind(answered))  # fmt: skip
        await self.reconcile("refresh")

    def _behind(self, answered: Mapping[str, float]) -> list[str]:
        """Orders whose answered fills the stream has not delivered yet (or whose position
        update has not followed)."""
        behind = [
            cid
            for cid, filled in answered.items()
            if filled > self._stream_filled.get(cid, 0.0) + 1e-12
        ]
        return behind + (["(position update)"] if self._position_due is not None else [])

    async def _reconcile_locked(self, why: str, *, market: bool = True) -> list[Any]:
        before = len(self.ledger.fills)
        started = time.monotonic()
        await self.reconciler.reconcile(market=market)
        due = self._position_due
        if due is not None and due <= started:  # REST read the position after that fill
            self._position_due = None
        if market and self.state.equity is not None:  # REST's total is the margin balance
            self._wallet = self.state.equity - self.state.unrealized_pnl()
        self._last_reconcile = time.monotonic()
        self.counters["reconciles"] += 1
        return self.ledger.fills[before:]

    # -- the stream loops -------------------------------------------------------------------
    def _add(
        self,
        name: str,
        private: bool,
        cadence: float | None,
        watch: Callable[[], Awaitable[Any]],
        apply: Callable[[Any], None],
    ) -> None:
        h = StreamHealth(name=name, private=private, cadence_s=cadence)
        self.health[name] = h
        self._tasks.append(asyncio.create_task(self._loop(h, watch, apply), name=f"stream {name}"))

    async def _loop(
        self, h: StreamHealth, watch: Callable[[], Awaitable[Any]], apply: Callable[[Any], None]
    ) -> None:
        backoff = Backoff(self.rng)
        while True:
            pending = asyncio.ensure_future(watch())
            try:
                if h.down_since is not None and h.private:
                    # resubscribed: once the new connection is up, REST fills the gap, and
                    # the stream is back (it speaks only when something happens: waiting
                    # for its next event would keep it "down" while the account is quiet),
                    # unless the feed closed it for its silence: then at its next event
                    up = await self._wait_connected(private=True, timeout=CONNECT_WAIT_S)
                    await self._backfill(h)
                    if up and not self._user_must_speak:
                        self._recovered(h)
                data = await pending
            except asyncio.CancelledError:
                pending.cancel()
                raise
            except Rotated:  # its connection was replaced (perpbot.streams.rotation): not a
                continue  # loss; watch again at once, on the new connection
            except Exception as exc:
                if not pending.done():
                    pending.cancel()
                elif not pending.cancelled():
                    pending.exception()  # seen (a 418 while the backfill failed too): no
                    # "Future exception was never retrieved" traceback on stderr
                delay = backoff.next()
                self._lost(h, exc, delay)
                await asyncio.sleep(delay)
                continue
            if h.private:
                self._user_must_speak = False
            if h.down_since is not None:
                self._recovered(h)
            backoff.reset()
            h.seen()
            try:
                apply(data)
            except Exception as exc:  # a payload we could not use: say so, keep streaming
                self._decide("alert", "STREAM_BAD_EVENT", f"{h.name}: an event could not be "
                             f"applied ({type(exc).__name__}: {exc}); REST reconciles it",
                             stream=h.name)  # fmt: skip

    def _lost(self, h: StreamHealth, exc: BaseException, delay: float) -> None:
        h.last_error = f"{type(exc).__name__}: {str(exc)[:160]}"
        if h.private:
            forget_listen_key(self.ex)
            self._gap_epoch += 1
        if h.down_since is None:
            h.down_since = time.monotonic()
            self.counters["disconnects"] += 1
            what = "its events since are backfilled from REST once it is back" if h.private else (
                "its data ages meanwhile")  # fmt: skip
            self._decide("retry", "STREAM_DISCONNECTED", f"the {h.name} stream was lost "
                         f"({h.last_error}); reconnecting in {delay:.2f} s, {what}",
                         stream=h.name, delay_s=round(delay, 3))  # fmt: skip
        else:
            self._decide("retry", "STREAM_RECONNECT_FAILED", f"reconnecting the {h.name} stream "
                         f"failed ({h.last_error}); next try in {delay:.2f} s (backoff with "
                         "jitter)", stream=h.name, delay_s=round(delay, 3))  # fmt: skip

    def _recovered(self, h: StreamHealth) -> None:
        assert h.down_since is not None
        down = time.monotonic() - h.down_since
        h.down_since = None
        h.reconnects += 1
        self.counters["reconnects"] += 1
        self._decide("recover", "STREAM_RECONNECTED", f"the {h.name} stream is back after "
                     f"{down:.2f} s", stream=h.name, down_s=round(down, 3))  # fmt: skip

    async def _backfill(self, h: StreamHealth) -> None:
        """After a user-stream loss: one REST reconcile per loss, whichever loop asks first."""
        target = self._gap_epoch
        async with self._lock:
            if self._filled_epoch >= target:
                return
            self._filled_epoch = target
            found = await self._reconcile_locked("backfill")
        self.counters["backfills"] += 1
        self.counters["backfilled_fills"] += len(found)
        missed = f"{len(found)} fill(s) the stream missed were recorded from REST" if found else (
            "REST had no fill the stream missed")  # fmt: skip
        self._decide("resolve", "STREAM_BACKFILL", f"the user stream reconnected; a REST "
                     f"reconcile filled the gap: {missed}", fills=len(found),
                     trade_ids=[f.trade_id for f in found])  # fmt: skip

    # -- applying events --------------------------------------------------------------------
    def _on_mark(self, symbol: str, t: dict[str, Any]) -> None:
        self.market.set_mark(symbol, t)
        mark = t.get("markPrice")
        if mark:
            self.state.marks[symbol] = float(mark)
            self.state.mark_times[symbol] = (t.get("timestamp") or time.time() * 1000.0) / 1000.0
            self._revalue()

    def _on_book(self, symbol: str, ob: Any) -> None:
        self.market.set_book(symbol, ob)
        self._book_seen[symbol] = time.time()

    def _catch_up(self) -> None:
        """Apply what ccxt.pro's caches hold that the loops never got. A watch is resolved
        only while a loop waits on it: an update that lands while its loop is between two
        watches stays in the cache until the next update wakes the loop (the last fill of a
        burst waited for the next trade, maybe for good on a quiet account). Applying is
        idempotent (fills by trade id, orders by their newest state)."""
        trades = [
            t for t in (getattr(self.ex, "myTrades", None) or [])
            if str(t.get("id")) not in self._trades_seen
        ]  # fmt: skip
        if trades:
            self._on_trades(trades)
        orders = [
            o for o in (getattr(self.ex, "orders", None) or [])
            if self._orders_seen.get(str(o.get("id"))) != (o.get("status"), o.get("filled"))
        ]  # fmt: skip
        if orders:
            self._on_orders(orders)

    def _on_orders(self, orders: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for o in orders:
            self._orders_seen[str(o.get("id"))] = (o.get("status"), o.get("filled"))
            if o.get("symbol") not in self.symbols:
                continue
            cid = o.get("clientOrderId")
            if cid not in self.ledger.orders:
                self.ledger.triggered(cid, o)  # the order a stop of the run placed: its own
            if cid in self.ledger.orders:
                self._order_update(cid, o, now)
            elif cid and not self._unplaced(o.get("symbol"), cid, o.get("id"), trade_of_update(o)):
                # the placement answer may not be back: its newest update waits for it (an
                # order the run did not place waits for nothing: its fill was said)
                self._unmatched_orders[cid] = (now, o)
            key = cid or (str(o["id"]) if o.get("id") is not None else None)
            if key in self.account.orders:
                self.account.order_closed(o)  # open: remaining; final: gone
            elif o.get("status") == "open":
                self.account.order_placed(o)

    def _order_update(self, cid: str, o: dict[str, Any], received: float) -> None:
        """A stream update of a tracked order (``received``: when it came, monotonic): the
        ledger's state, the fills it told; a new fill owes a position update unless one
        was applied since the update came."""
        filled = float(o.get("filled") or 0.0)
        if filled > self._stream_filled.get(cid, 0.0):
            self._stream_filled[cid] = filled
            if self._position_due is None and not self._position_covers(o, received):
                self._position_due = received
        self.reconciler.record_order(cid, o, "stream")

    def _position_covers(self, o: dict[str, Any], received: float) -> bool:
        """Whether a position update applied already includes the fill of order update
        ``o``: one the exchange made at or after it (the ACCOUNT_UPDATE and the
        ORDER_TRADE_UPDATE are separate messages, in either order), else (no exchange time)
        one applied after ``o`` came."""
        at = o.get("lastUpdateTimestamp")
        if at:
            return self._positions_ms >= at
        return self._positions_at > received

    def _on_trades(self, trades: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        for t in trades:
            self._trades_seen.add(str(t.get("id")))
            symbol = t.get("symbol")
            if symbol not in self.symbols:
                continue
            oid = str(t.get("order")) if t.get("order") is not None else None
            cid = (t.get("info") or {}).get("c")
            if oid in self.ledger.by_order_id or self.ledger.triggered(cid, {"id": oid}):
                self._booked(self.reconciler.record_trades(symbol, [t], "stream"))
            elif not self._unplaced(symbol, cid, oid, t):
                self._unmatched.append((now, symbol, t))  # the placement answer may not be back

    def _unplaced(self, symbol: Any, cid: Any, oid: Any, trade: dict[str, Any] | None) -> bool:
        """An update of an order the run did not place (its client id not this run's):
        remembered for REST, and its fill (``trade``) said once (perpbot.engine.unplaced).
        False for the run's own order, or one the update does not name."""
        unplaced = self.reconciler.unplaced
        if unplaced is None or not cid:
            return False
        unplaced.remember(oid, cid)
        if unplaced.mine(str(cid)):
            return False
        if trade is None or not unplaced.note(str(symbol), trade, str(cid), "stream"):
            return True
        if unplaced.closed:  # a shared run: its own book may be flat now (Reconciler)
            self._own_positions()
        return True

    def _booked(self, fills: list[Any]) -> None:
        """Count the stream's newly booked fills. A shared run's positions are its own fills
        (``[strategy] share_symbols``): re-read them from the ledger now, since the fill may
        be booked after the ACCOUNT_UPDATE that followed it (a fill whose placement answer
        was not back yet is booked late, by ``_retry_unmatched``)."""
        self.counters["stream_fills"] += len(fills)
        if fills and self.reconciler.own_only is not None:
            self._own_positions()

    def _own_positions(self) -> None:
        """A shared run's positions from its own fills (the ledger), revalued at the mark."""
        self.reconciler.own_positions(dict(self.state.positions), dict(self.state.legs))
        self._revalue()

    def _retry_unmatched(self) -> None:
        """Apply what the stream told of orders before their placement answer named them
        (the answer came after the fill): the order's newest update, then its fills. The
        answer's state is older than that update (an order it says is open may have
        filled since), so the update follows it into the ledger and the account view."""
        now = time.monotonic()
        for cid, (seen, o) in list(self._unmatched_orders.items()):
            if cid in self.ledger.orders:
                del self._unmatched_orders[cid]
                self._order_update(cid, o, seen)
                self.account.order_closed(o)  # open: its remaining; final: gone
            elif now - seen >= UNMATCHED_KEEP_S:
                del self._unmatched_orders[cid]
        if not self._unmatched:
            return
        keep = []
        for seen, symbol, t in self._unmatched:
            if str(t.get("order")) in self.ledger.by_order_id:
                self._booked(self.reconciler.record_trades(symbol, [t], "stream"))
            elif now - seen < UNMATCHED_KEEP_S:
                keep.append((seen, symbol, t))
        self._unmatched = keep

    async def _watch_positions(self) -> list[dict[str, Any]]:
        """ccxt.pro resolves ``watch_positions`` with one ACCOUNT_UPDATE's positions and
        forgets an update that arrives before the next call is waiting (several read in one
        go): the position then stays one fill behind until the next update. Its cache keeps
        every update, so this answers from the cache: at once when it moved since the last
        answer, else after the next update."""
        latest = self._cached_positions()
        read = {s: _position_key(p) for s, p in latest.items()}
        if not latest or read == self._positions_read:  # nothing new since the last answer
            await self.ex.watch_positions()
            latest = self._cached_positions()
            read = {s: _position_key(p) for s, p in latest.items()}
        self._positions_read = read
        self.counters["reordered_positions"] = self.wire.reordered_positions
        return list(latest.values())

    def _cached_positions(self) -> dict[str, dict[str, Any]]:
        """The newest cached position of each symbol, of each side on a hedge-mode account
        (oldest first in the cache: an updated entry moves to its end)."""
        latest: dict[str, dict[str, Any]] = {}
        for cache in (getattr(self.ex, "positions", None) or {}).values():
            for p in cache:
                symbol, ts = p.get("symbol"), p.get("timestamp") or 0
                if not symbol:
                    continue
                key = leg_key(symbol, (p.get("info") or {}).get("ps"))
                if ts >= (latest.get(key, {}).get("timestamp") or 0):
                    latest[key] = p
        return latest

    def _on_positions(self, positions: list[dict[str, Any]]) -> None:
        changed = False
        self._position_due = None
        self._positions_at = time.monotonic()
        self._positions_ms = max(
            [self._positions_ms, *(p.get("timestamp") or 0 for p in positions)]
        )
        if self.reconciler.own_only is not None:  # [strategy] share_symbols: the account's
            # position is not the run's; the run's comes from its own fills (the ledger)
            self.reconciler.account_read(positions)
            self._own_positions()
            return
        for raw in positions:
            p = position_of(raw)
            if p.symbol not in self.symbols:
                continue
            if not self.state.admit(p):  # out of order, or older than REST's last answer
                self.counters["stale_positions"] += 1
                continue
            key = leg_key(p.symbol, p.position_side)
            old = (self.state.legs if p.position_side else self.state.positions).get(key)
            if old is not None:  # ACCOUNT_UPDATE has no liquidation price, leverage or mark:
                p = replace(  # keep REST's until the next reconcile reads them again
                    p,
                    liquidation_price=p.liquidation_price or old.liquidation_price,
                    leverage=p.leverage or old.leverage,
                    mark_price=p.mark_price or old.mark_price,
                )
            if p.position_side is None:
                self.state.positions[p.symbol] = p
            else:  # a hedge-mode side: the net follows the sides
                self.state.legs[key] = p
            changed = True
        if changed:
            self._net_of_legs()
            self.account.set_positions(self._positions_raw())
            self._revalue()

    def _positions_raw(self) -> list[dict[str, Any]]:
        """The run's positions as AccountView.set_positions reads them (each hedge-mode
        side on its own: the view sums the net)."""
        state = self.state
        sides = {p.symbol for p in state.legs.values()}
        rows = [p for s, p in state.positions.items() if s not in sides]
        return [position_raw(p) for p in [*rows, *state.legs.values()]]

    def _net_of_legs(self) -> None:
        """Hedge mode: each symbol's net snapshot from its sides (split_legs)."""
        state = self.state
        if not state.legs:
            return
        held = {p.symbol for p in state.legs.values()}
        nets, legs = split_legs(list(state.legs.values()), self.symbols)
        state.legs = legs
        for symbol in held:
            if symbol in nets:
                state.positions[symbol] = nets[symbol]
            else:
                state.positions.pop(symbol, None)

    def _on_balance(self, balance: dict[str, Any]) -> None:
        total = (balance.get("total") or {}).get("USDT")  # ACCOUNT_UPDATE: the wallet
        if total is None:
            return
        self._wallet = float(total)
        self._revalue()

    def _revalue(self) -> None:
        """Equity = wallet + each position revalued at the streamed mark, as REST's margin
        balance is, so drawdown trips and the risk layer follow the mark between reads."""
        if self._wallet is None:
            return
        state, upnl = self.state, 0.0
        for table in (state.positions, state.legs):
            for key, p in list(table.items()):
                mark = state.marks.get(p.symbol)
                if mark and p.amount and p.entry_price:
                    pnl = p.amount * (mark - p.entry_price)
                    table[key] = replace(p, mark_price=mark, unrealized_pnl=pnl)
        self._net_of_legs()  # a symbol held on both sides: its net PnL is its sides'
        for p in state.positions.values():
            upnl += p.unrealized_pnl
        state.equity = self._wallet + upnl
        self.account.equity = state.equity
        state.peak_equity = max(state.peak_equity or state.equity, state.equity)

    # -- health -----------------------------------------------------------------------------
    async def _watchdog(self) -> None:
        while True:
            await asyncio.sleep(WATCHDOG_S)
            now = time.monotonic()
            for h in self.health.values():
                if h.cadence_s is None or h.down_since is not None or h.stale:
                    continue
                age = h.age(now)
                silent = age if age is not None else now - self.started
                if silent > self.stale_after_s:
                    h.stale = True
                    self.counters["stale"] += 1
                    self._decide("alert", "STREAM_STALE", f"the {h.name} stream has been "
                                 f"silent for {silent:.1f} s (expected every {h.cadence_s:g} s; "
                                 f"[exchange] stream_stale_s = {self.stale_after_s:g}): its "
                                 "connection is dropped and reopened; its data is treated as "
                                 "stale meanwhile", stream=h.name,
                                 silent_s=round(silent, 3))  # fmt: skip
                    await self._drop(private=h.private)
            self._retry_unmatched()
            self._catch_up()
            await self._check_owed(now)
            self._check_rotation(now)
            if now - self._last_reconcile >= self.reconcile_interval and not self._lock.locked():
                await self._periodic()

    async def _keep_alive(self) -> None:
        """Extend the user stream's listenKey (a PUT) every ``keepalive_s``. ccxt.pro sends
        one keepalive after each key it creates and schedules no next one (its reschedule
        never finds the user-stream connection), so on a quiet account the key lapsed 60 min
        after that one. A keepalive that fails (-1125: the key is gone, its
        ``listenKeyExpired`` lost) makes ccxt.pro forget the key and fail the user stream's
        watches, whose loops create a new key, resubscribe and backfill; the dead key's
        connection, which may stay open and silent, is closed here."""
        while True:
            await asyncio.sleep(self.keepalive_s)
            if listen_key(self.ex) is None:
                continue  # none yet, or lost: the next subscription creates one
            await self.ex.keep_alive_listen_key()
            if listen_key(self.ex) is None:
                await self._drop(private=True)

    async def _check_owed(self, now: float) -> None:
        """A silent stall of the user stream: the book shows one of the run's resting orders
        gone and the user stream has not said so within the grace (perpbot.streams.evidence).
        """
        if not self.user_stream_up:
            return
        mine = {
            k: o
            for k, o in self.account.orders.items()
            if o.client_order_id in self.ledger.orders and o.symbol in self.symbols
        }
        due = self.owed.check(mine, self.market.books, self._book_seen, now)
        if not due:
            return
        self.counters["user_silent"] += 1
        first, o = due[0], due[0].order
        heard = [a for h in self.health.values() if h.private and (a := h.age(now)) is not None]
        quiet = f"{min(heard):.1f} s" if heard else "since it opened"
        self._decide("alert", "STREAM_USER_SILENT", f"the order book has shown for "
                     f"{first.owed_s:.1f} s that order {o.client_order_id} ({o.side} "
                     f"{o.remaining:g} {o.symbol} at {o.price:g}; best bid {first.best_bid}, "
                     f"best ask {first.best_ask}) no longer rests, and the user stream (silent "
                     f"for {quiet}) has not said so within {self.owed.grace_s:g} s: it is taken "
                     "as stalled, reconnected, and REST backfills what it held back",
                     orders=[d.order.client_order_id for d in due],
                     owed_s=round(first.owed_s, 3))  # fmt: skip
        await self._drop(private=True)

    def _check_rotation(self, now: float) -> None:
        """Start rotating each connection open longer than ``rotate_after_s``."""
        for url, client in self._connections():
            if url in self._rotating:
                continue
            age = connection_age_s(self.ex, client)
            if age is None or age < self.rotate_after_s or now < self._rotate_retry.get(url, 0):
                continue
            self._rotating.add(url)
            self._tasks = [t for t in self._tasks if not t.done()]
            task = asyncio.create_task(self._rotate(url, client, age), name="stream rotation")
            self._tasks.append(task)

    async def _rotate(self, url: str, client: Any, age: float) -> None:
        private = self._is_private(url)
        kind = "user data" if private else "market"
        try:
            await rotate(self.ex, url, client, make_first=private)
        except Exception as exc:
            self._rotate_retry[url] = time.monotonic() + RETRY_S
            self._decide("retry", "STREAM_ROTATE_FAILED", f"rotating the {kind} stream "
                         f"connection (open {age:.0f} s) failed ({type(exc).__name__}: "
                         f"{str(exc)[:160]}); the old connection is kept and the rotation is "
                         f"tried again in {RETRY_S:g} s", private=private,
                         age_s=round(age, 3))  # fmt: skip
            return
        finally:
            self._rotating.discard(url)
        self.counters["rotations"] += 1
        how = (
            "a new connection was opened before the old one was closed: no gap"
            if private
            else "it was closed and reopened at once (its book resynced from a snapshot)"
        )
        self._decide("info", "STREAM_ROTATED", f"the {kind} stream connection was rotated "
                     f"after {age:.0f} s ([exchange] stream_rotate_s = {self.rotate_after_s:g}), "
                     f"ahead of the exchange's 24 h disconnect: {how}", private=private,
                     age_s=round(age, 3))  # fmt: skip

    async def _periodic(self) -> None:
        started = time.time()
        try:
            found = await self.reconcile("periodic", market=not self._market_up())
        except Exception as exc:
            self._last_reconcile = time.monotonic()
            self._decide("alert", "STREAM_RECONCILE_FAILED", f"the periodic REST reconcile "
                         f"failed ({type(exc).__name__}); the next one is in "
                         f"{self.reconcile_interval:g} s")  # fmt: skip
            return
        missed = [f for f in found if f.ts < started - GAP_GRACE_S]
        if missed and self.user_stream_up:
            self.counters["gaps"] += 1
            self._decide("alert", "STREAM_GAP", f"the periodic REST reconcile found "
                         f"{len(missed)} fill(s) the user stream never delivered (recorded "
                         "from REST now); the user stream is reconnected",
                         trade_ids=[f.trade_id for f in missed])  # fmt: skip
            await self._drop(private=True)

    def _market_up(self) -> bool:
        return (
            all(
                h.down_since is None and not h.stale
                for h in self.health.values()
                if not h.private and h.cadence_s is not None
            )
            and self._wallet is not None
        )

    def _is_private(self, url: str) -> bool:
        return is_private_url(self.ex, url)

    def _connections(self, *, private: bool | None = None) -> list[tuple[str, Any]]:
        """ccxt.pro's WebSocket clients as (url, client), of one kind when ``private`` is
        given (its ``clients`` also holds an ``authenticationFlights`` entry: not one)."""
        clients = getattr(self.ex, "clients", None) or {}
        return [
            (url, client)
            for url, client in list(clients.items())
            if url != "authenticationFlights"
            and (private is None or self._is_private(url) == private)
        ]

    async def _drop(self, *, private: bool) -> None:
        """Close the connections of one kind; their loops reconnect (and backfill)."""
        if private:
            self._user_must_speak = True
        for url, client in self._connections(private=private):
            self.ex.clients.pop(url, None)
            client.reset(ccxt.NetworkError(f"perpbot closed the stale stream {url}"))
            with contextlib.suppress(Exception):
                await client.close()

    async def _wait_connected(self, *, private: bool, timeout: float) -> bool:
        """Whether the connections of one kind are open (waiting up to ``timeout``)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            clients = [c for _, c in self._connections(private=private)]
            if clients and all(c.connected.done() and not c.closed() for c in clients):
                return True
            await asyncio.sleep(0.01)
        return False

    def _decide(self, action: Action, code: str, sentence: str, **data: Any) -> None:
        decision = Decision("streams", action, code, sentence, data)
        self.recent.append({"ts": decision.ts, "code": code, "sentence": sentence})
        self.bus.publish(decision)
