"""The exchange engine: state, time, fills, funding, countdowns and liquidation.

Single-threaded by design: it runs on the server's event loop and every mutation happens
there (the thread handle marshals calls onto the loop), so it needs no locks and its
behaviour is a pure function of the seed, the clock and the request sequence.
Order entry and matching live in trading.py; this module owns what happens as time passes.
"""

from __future__ import annotations

import hashlib
import math
import random
import zlib
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Any

from perpbot.sim import margin
from perpbot.sim.accounts import apply_position_fill, default_permissions
from perpbot.sim.book import Book
from perpbot.sim.clock import SimClock
from perpbot.sim.config import SimConfig
from perpbot.sim.faults import FaultInjector, FaultPlan
from perpbot.sim.feed import Feed, QueueFeed, ReplayFeed, replay_feed
from perpbot.sim.limits import SimRateLimits
from perpbot.sim.maintenance import Maintenance
from perpbot.sim.market import CommonShock, SymbolMarket
from perpbot.sim.models import Account, AlgoOrder, Order, Trade, position_key
from perpbot.sim.regimes import Regimes
from perpbot.sim.replay_files import Tick
from perpbot.sim.spec import SymbolSpec
from perpbot.sim.ws_events import (
    AccountChanged,
    Listener,
    MarketTrade,
    OrderChanged,
    SimEvent,
)

MAX_STEPS_PER_SYNC = 20_000


def _funding_interval_ms(cfg: SimConfig, spec: SymbolSpec) -> int:
    hours = spec.cfg.funding_interval_h
    return hours * 3_600_000 if hours else cfg.funding.interval_s * 1000


LIQUIDATION_FEE = 0.0125  # exchangeInfo liquidationFee: the clearance fee rate
COUNTDOWN_LOG = 1000  # countdownCancelAll events kept for the state


class Engine:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        # the market source (feed.py): None for the random walk; a replay's clock starts
        # at its first event and runs clock_speed times real time (wall) or manually
        self.feed: Feed | None = replay_feed(cfg) if cfg.source.kind == "replay" else None
        origin = cfg.start_time_ms
        shift = isinstance(self.feed, ReplayFeed) and cfg.source.shift_to_now
        if isinstance(self.feed, ReplayFeed) and origin is None and not shift:
            origin = self.feed.start_ms()
        self.clock = SimClock(cfg.clock, origin, cfg.clock_speed, follow=self.feed is not None)
        if isinstance(self.feed, ReplayFeed) and shift:
            self.feed.shift_ms = self.clock.now_ms() - (self.feed.start_ms() or 0)
        if cfg.source.kind == "live":  # fed by live_source.LiveSource (started by the server)
            self.feed = QueueFeed(self.clock.now_ms, cfg.source.symbols)
        self.rng = random.Random(cfg.seed)
        self.common_rng = random.Random(cfg.seed ^ 0xC0E1A7)  # shock_correlation's draws
        self.faults = FaultInjector(cfg.seed)
        self.limits = SimRateLimits(cfg.limits)
        now = self.clock.now_ms()
        self.specs: dict[str, SymbolSpec] = {s.symbol: SymbolSpec(s) for s in cfg.symbols}
        self.markets: dict[str, SymbolMarket] = {
            sym: SymbolMarket(
                spec,
                cfg.market,
                cfg.seed,
                self.rng,
                now,
                funding_interval_ms=_funding_interval_ms(cfg, spec),
                fixed_rate=cfg.funding.rate,
                rate_cap=cfg.funding.rate_cap,
                regimes=Regimes.create(cfg.source, cfg.seed ^ zlib.crc32(sym.encode())),
            )
            for sym, spec in self.specs.items()
        }
        if self.feed is not None:
            for sym, mkt in self.markets.items():
                first = self.feed.first(sym)
                if first is not None:
                    mkt.rebase(first.price, now)
        self.funding_history: list[dict[str, Any]] = []
        self.algo_orders: dict[int, AlgoOrder] = {}
        self.next_algo_id = 1_000_000_001
        # called as hook(symbol, t) after every market step and jump of a symbol (the
        # Algo Service's trigger check registers here; see algo.py)
        self.step_hooks: list[Callable[[str, int], None]] = []
        # the matching engine's market-driven fills (trading.sweep / synthetic_take) and
        # liquidation.py's liquidate(acct, position view, t), installed by build_engine():
        # they build on this module, so the engine calls them instead of importing them
        self.sweeper: Callable[[str, int], None] | None = None
        self.taker: Callable[[str, str, int, int], None] | None = None
        self.liquidator: Callable[[Account, margin.PositionView, int], None] | None = None
        # a feed's tick applied to a symbol's market (trading.follow_tick)
        self.follower: Callable[[str, Tick], None] | None = None
        self.insurance_fund = cfg.insurance_fund
        self.books: dict[str, Book] = {sym: Book() for sym in self.specs}
        self.listeners: list[Listener] = []  # stream hooks (ws_events.py)
        for sym, mkt in self.markets.items():
            mkt.on_trade = partial(self._announce_trade, sym)
        self.accounts: dict[str, Account] = {}
        self.orders: dict[int, Order] = {}
        self.open_orders: dict[str, dict[int, Order]] = {}
        self.cid_index: dict[tuple[str, str], Order] = {}
        self.trades: list[Trade] = []
        self.trades_by_account: dict[str, list[Trade]] = {}
        self.liquidations: list[dict[str, Any]] = []
        self.crowd_liquidations: list[dict[str, Any]] = []  # crowd_traders.py
        self.crowd_long: Callable[[str], int] = lambda symbol: 0  # crowd's open longs (steps)
        self.countdowns: dict[tuple[str, str], int] = {}
        # what happened to them: set, disarmed, fired (the last COUNTDOWN_LOG, for the state)
        self.countdown_log: deque[dict[str, Any]] = deque(maxlen=COUNTDOWN_LOG)
        self.maintenance = Maintenance()  # the exchange's maintenance window (maintenance.py)
        self.good_till: dict[int, Order] = {}  # open GTD orders, by id, until they expire
        self.holders: set[str] = set()
        self.next_order_id = 4_000_000_001
        self.next_trade_id = 700_000_001
        self.next_tran_id = 9_000_000_001
        self.seq = 0
        self._key_seq = 0
        self.step_ms = cfg.market.tick_ms
        self.next_step_ms = now + self.step_ms
        self.set_faults(cfg.faults)

    # -- events for the stream layer ------------------------------------------------------
    def emit(self, event: SimEvent) -> None:
        for listener in self.listeners:
            listener(event)

    def _announce_trade(self, symbol: str, price: int, qty: int, taker_buys: bool, t: int) -> None:
        if self.listeners:
            seq = self.markets[symbol].trade_seq
            self.emit(MarketTrade(symbol, seq, price, qty, taker_buys, t))

    # -- accounts ------------------------------------------------------------------------
    def create_account(
        self, permissions: dict[str, Any] | None = None, balance: float | None = None
    ) -> Account:
        """Create an API key with deterministic key/secret (derived from seed and index)."""
        self._key_seq += 1
        material = hashlib.sha256(f"perpbot-sim:{self.cfg.seed}:{self._key_seq}".encode())
        key = material.hexdigest()
        secret = hashlib.sha256(material.digest() + b"secret").hexdigest()
        perms = default_permissions()
        if permissions:
            unknown = set(permissions) - set(perms)
            if unknown:
                raise ValueError(f"unknown permission(s): {', '.join(sorted(unknown))}")
            perms.update({k: bool(v) for k, v in permissions.items()})
        now = self.clock.now_ms()
        start = self.cfg.starting_balance if balance is None else float(balance)
        acct = Account(key, secret, perms, now, start, update_time=now)
        self.accounts[key] = acct
        self.open_orders[key] = {}
        self.trades_by_account[key] = []
        return acct

    # -- faults ------------------------------------------------------------------------
    def set_faults(self, plan: FaultPlan) -> None:
        """Install a plan (replacing the previous one) and apply its one-shot effects."""
        self.faults.install(plan)
        self.clock.skew_ms = plan.clock_skew_ms
        self.limits.override(plan.limits)
        now = self.clock.now_ms()
        for mkt in self.markets.values():
            mkt.thin = plan.thin_book
        for symbol, pct in plan.price_jump.items():
            if symbol in self.markets:
                self.jump(symbol, pct)
        self.next_step_ms = max(self.next_step_ms, now)

    def jump(self, symbol: str, pct: float) -> None:
        """A one-shot move of ``symbol`` by ``pct`` percent; with ``shock_correlation``
        rho every other symbol on the random walk moves by rho x ``pct`` at once (the
        move a correlated market makes on average with it)."""
        now = self.clock.now_ms()
        moves = {symbol: pct}
        rho = self.cfg.market.shock_correlation
        if rho > 0:
            for other in self.markets:
                if other != symbol and not (self.feed is not None and self.feed.covers(other)):
                    moves[other] = rho * pct
        for sym, move in moves.items():
            self.markets[sym].jump(move, now)
            if self.sweeper is not None:
                self.sweeper(sym, now)
            for hook in self.step_hooks:
                hook(sym, now)
        self.check_liquidations(now)

    def _common_shock(self, dt_s: float) -> CommonShock | None:
        """This step's shared shock (``shock_correlation`` > 0; its own seeded RNG, so the
        symbols' own draws are the same as without it)."""
        cfg = self.cfg.market
        if cfg.shock_correlation <= 0:
            return None
        rng = self.common_rng
        z = rng.gauss(0.0, 1.0)
        jump = 0.0
        if cfg.jump_rate > 0 and rng.random() < cfg.shock_correlation * cfg.jump_rate * dt_s:
            size = cfg.jump_size * (0.5 + rng.random())
            jump = size if rng.random() < 0.5 else -size
        return CommonShock(cfg.shock_correlation, z, jump)

    # -- time ------------------------------------------------------------------------------
    def sync(self) -> None:
        """Bring the market, funding and countdowns up to the clock's current time."""
        now = self.clock.now_ms()
        t = self.next_step_ms
        if t <= now:
            n = (now - t) // self.step_ms + 1
            stride = max(1, math.ceil(n / MAX_STEPS_PER_SYNC))
            dt_s = self.step_ms * stride / 1000.0
            while t <= now:
                self._process_timed(t)
                common = self._common_shock(dt_s)
                halted = self.maintenance.active(t)  # matching halted; timers keep running
                for symbol, mkt in self.markets.items():
                    if halted or self.faults.frozen(symbol):
                        continue
                    fed = self.feed is not None and self.feed.covers(symbol)
                    if fed:
                        self._follow(symbol, t)
                        mkt.advance(dt_s, t, candle=False)
                    else:
                        mkt.step(dt_s, t, common)
                    mkt.sample_premium(t)
                    if self.sweeper is not None:
                        self.sweeper(symbol, t)
                    draw = None
                    if not (fed and self.feed is not None and self.feed.trades):
                        draw = mkt.taker_draw(dt_s)  # drawn even unmatched: the RNG's order
                    if draw is not None and self.taker is not None:
                        self.taker(symbol, draw[0], draw[1], t)
                    for hook in self.step_hooks:
                        hook(symbol, t)
                if self.holders:
                    self.check_liquidations(t)
                t += self.step_ms * stride
            self.next_step_ms = t
        self._process_timed(now)

    def _follow(self, symbol: str, t: int) -> None:
        """Apply the feed's ticks up to ``t`` to ``symbol``'s market, in order."""
        assert self.feed is not None
        ticks = self.feed.take(symbol, t)
        if not ticks:
            return
        if self.follower is None:
            raise RuntimeError("engine has no follower: build it with build_engine()")
        mkt = self.markets[symbol]
        for tick in ticks:
            if mkt.ticks_followed == 0 and not isinstance(self.feed, ReplayFeed):
                mkt.rebase(tick.price, tick.t)  # a live feed's first trade
            mkt.ticks_followed += 1
            self.follower(symbol, tick)

    @property
    def interval_ms(self) -> int:
        """The first symbol's funding interval (symbols may differ: see each market)."""
        return next(iter(self.markets.values())).funding_interval_ms

    @property
    def next_funding_ms(self) -> int:
        """The next funding time of any symbol (each symbol has its own schedule)."""
        return min(m.next_funding_ms for m in self.markets.values())

    def _process_timed(self, t: int) -> None:
        for symbol, mkt in self.markets.items():
            while mkt.next_funding_ms <= t:
                self._charge_funding(symbol, mkt.next_funding_ms)
                mkt.next_funding_ms += mkt.funding_interval_ms
        if self.good_till:
            self._expire_good_till(t)
        if self.countdowns:
            for key, deadline in list(self.countdowns.items()):
                if deadline <= t:
                    del self.countdowns[key]
                    self.note_countdown(key[0], key[1], deadline, "fired")
                    self.cancel_all(key[0], key[1], deadline)

    def note_countdown(self, account: str, symbol: str, t: int, what: str) -> None:
        self.countdown_log.append({"account": account, "symbol": symbol, "time": t, "event": what})

    def _expire_good_till(self, t: int) -> None:
        """GTD orders still open at their goodTillDate expire then (status EXPIRED)."""
        for order_id, order in list(self.good_till.items()):
            if not order.is_open:
                del self.good_till[order_id]
            elif order.good_till_date <= t:
                del self.good_till[order_id]
                self.close_order(order, "EXPIRED", order.good_till_date)

    def _charge_funding(self, symbol: str, t: int) -> None:
        """Settle one symbol's funding: rate from the premium index, paid on mark notional."""
        mkt = self.markets[symbol]
        rate = mkt.pricing.settle()
        mark = mkt.mark
        self.funding_history.append(
            {"symbol": symbol, "fundingTime": t, "rate": rate, "mark": mark}
        )
        for key in sorted(self.holders):
            acct = self.accounts[key]
            pos = acct.positions.get(symbol)
            if pos is None or pos.amt == 0:
                continue
            amount = -pos.amt * self.specs[symbol].step_f * mark * rate
            acct.wallet += amount
            if margin.is_isolated(acct, symbol):
                pos.isolated_wallet += amount
            self.add_income(acct, symbol, "FUNDING_FEE", amount, t, "")
            self.emit(AccountChanged(key, "FUNDING_FEE", t, (symbol,)))

    def funding_rate(self, symbol: str | None = None) -> float:
        """The current (estimated) funding rate of ``symbol`` (default: the first one)."""
        mkt = self.markets[symbol] if symbol else next(iter(self.markets.values()))
        return mkt.pricing.last_rate

    # -- bookkeeping -------------------------------------------------------------------
    def add_income(
        self, acct: Account, symbol: str, kind: str, amount: float, t: int, trade_id: str
    ) -> None:
        self.next_tran_id += 1
        acct.income.append(
            {
                "symbol": symbol,
                "incomeType": kind,
                "income": amount,
                "asset": "USDT",
                "info": trade_id if trade_id else kind,
                "time": t,
                "tranId": self.next_tran_id,
                "tradeId": trade_id,
            }
        )
        acct.update_time = t

    def open_of(self, account: str, symbol: str | None = None) -> list[Order]:
        orders = self.open_orders.get(account, {}).values()
        return [o for o in orders if symbol is None or o.symbol == symbol]

    def close_order(self, order: Order, status: str, t: int) -> None:
        """Move an open order to a terminal status and out of the book and indexes."""
        if order.is_open:
            self.books[order.symbol].remove(order)
            self.open_orders.get(order.account, {}).pop(order.order_id, None)
        order.status = status
        order.update_time = t
        if status in ("CANCELED", "EXPIRED"):
            order.cancel_time = t
        if status != "FILLED" and order.recorded:  # a fill announces itself in fill_order
            self.emit(OrderChanged(order, status, t))

    def cancel_all(self, account: str, symbol: str, t: int) -> int:
        orders = self.open_of(account, symbol)
        for order in orders:
            self.close_order(order, "CANCELED", t)
        return len(orders)

    def marks(self) -> dict[str, float]:
        return {s: m.mark for s, m in self.markets.items()}

    def view(self, acct: Account) -> margin.MarginView:
        return margin.summarize(
            acct, self.specs, self.marks(), self.open_of(acct.api_key), self.cfg.default_leverage
        )

    # -- fills ---------------------------------------------------------------------------
    def fill_order(self, order: Order, price: int, qty: int, maker: bool, t: int) -> None:
        """Apply one fill to a user's order: position, wallet, fees, trade and income."""
        acct = self.accounts[order.account]
        spec = self.specs[order.symbol]
        px = spec.px(price)
        quote = px * spec.qty(qty)
        fee = quote * (self.cfg.fees.maker if maker else self.cfg.fees.taker)
        lev = margin.leverage_of(acct, order.symbol, self.cfg.default_leverage)
        iso = margin.is_isolated(acct, order.symbol)
        realized = apply_position_fill(
            acct, spec, order.sign * qty, px, lev, iso, t, order.position_side
        )
        acct.wallet += realized - fee
        acct.update_time = t
        order.executed += qty
        order.cum_quote += quote
        order.update_time = t
        self.next_trade_id += 1
        trade = Trade(
            self.next_trade_id,
            order.order_id,
            order.symbol,
            order.account,
            order.side,
            price,
            qty,
            quote,
            fee,
            realized,
            maker,
            t,
        )
        self.trades.append(trade)
        self.trades_by_account[order.account].append(trade)
        if realized != 0.0:
            self.add_income(acct, order.symbol, "REALIZED_PNL", realized, t, str(trade.trade_id))
        self.add_income(acct, order.symbol, "COMMISSION", -fee, t, str(trade.trade_id))
        if order.remaining == 0:
            self.close_order(order, "FILLED", t)
        elif order.status == "NEW":
            order.status = "PARTIALLY_FILLED"
        self.emit(OrderChanged(order, "TRADE", t, trade))
        self.emit(AccountChanged(acct.api_key, "ORDER", t, (order.symbol,)))
        pos = acct.positions[position_key(order.symbol, order.position_side)]
        if pos.amt != 0:
            self.holders.add(acct.api_key)
        else:
            if not any(p.amt for p in acct.positions.values()):
                self.holders.discard(acct.api_key)
            for other in self.open_of(acct.api_key, order.symbol):
                if other.closing and other.position_side == order.position_side:
                    self.close_order(other, "EXPIRED", t)

    # -- liquidation ---------------------------------------------------------------------
    def check_liquidations(self, t: int) -> None:
        for key in sorted(self.holders):
            acct = self.accounts[key]
            view = self.view(acct)
            cross = [pv for pv in view.positions if not pv.isolated]
            doomed = []
            if cross and view.cross_wallet + view.cross_upnl < view.cross_maint:
                doomed.extend(cross)
            doomed.extend(
                pv
                for pv in view.positions
                if pv.isolated and pv.pos.isolated_wallet + pv.upnl < pv.mm
            )
            for pv in doomed:
                if self.liquidator is None:
                    raise RuntimeError("engine has no liquidator: build it with build_engine()")
                self.liquidator(acct, pv, t)

    # -- order records -----------------------------------------------------------------
    def new_order(
        self,
        account: str,
        symbol: str,
        cid: str,
        side: str,
        otype: str,
        tif: str,
        price: int,
        qty: int,
        reduce_only: bool,
        t: int,
        record: bool = True,
        position_side: str = "BOTH",
        good_till_date: int = 0,
        price_match: str = "NONE",
    ) -> Order:
        self.seq += 1
        order = Order(
            self.next_order_id,
            symbol,
            account,
            cid,
            side,
            otype,
            tif,
            price,
            qty,
            reduce_only,
            t,
            self.seq,
            update_time=t,
            orig_type=otype,
            recorded=record,
            position_side=position_side,
            good_till_date=good_till_date,
            price_match=price_match,
        )
        self.next_order_id += 1
        self.orders[order.order_id] = order
        if record:
            self.cid_index[(account, cid)] = order
            self.open_orders[account][order.order_id] = order
            if good_till_date:
                self.good_till[order.order_id] = order
            self.emit(OrderChanged(order, "NEW", t))
        return order
