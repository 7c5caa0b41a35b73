"""The synthetic market of one symbol: a seeded random walk, a crowd book and klines.

The mid follows a geometric random walk with occasional jumps, stepped every ``tick_ms``
of sim time from one seeded RNG, so a given seed and request sequence always produces the
same prices. Around the mid a synthetic crowd quotes ``crowd_levels`` levels per side; its
sizes come from an RNG seeded by (seed, symbol, step) so materialising the book on demand
never disturbs the walk. Within one step, liquidity the users take from the crowd stays
taken; the next step re-quotes it.
"""

from __future__ import annotations

import math
import random
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from perpbot.sim.config import MarketConfig
from perpbot.sim.pricing import Pricing
from perpbot.sim.regimes import Regimes
from perpbot.sim.spec import SymbolSpec

MINUTE_MS = 60_000
MAX_CANDLES = 10_080
TAPE = 1000  # recent trades kept for /fapi/v1/trades and aggTrades (Binance's max limit)


class Candle:
    """One 1m kline; prices in ticks, volumes in base/quote units."""

    __slots__ = (
        "close",
        "count",
        "high",
        "low",
        "open",
        "open_ms",
        "quote",
        "taker_buy",
        "taker_buy_quote",
        "volume",
    )

    def __init__(self, open_ms: int, price: int) -> None:
        self.open_ms = open_ms
        self.open = self.high = self.low = self.close = price
        self.volume = 0.0
        self.quote = 0.0
        self.count = 0
        self.taker_buy = 0.0
        self.taker_buy_quote = 0.0


@dataclass(frozen=True, slots=True)
class CommonShock:
    """One step's shocks every symbol shares (``[market] shock_correlation`` rho > 0): the
    walk's common normal draw, and a common jump (a signed fraction; 0: none this step)."""

    rho: float
    z: float
    jump: float


class SymbolMarket:
    def __init__(
        self,
        spec: SymbolSpec,
        cfg: MarketConfig,
        seed: int,
        rng: random.Random,
        now_ms: int,
        *,
        funding_interval_ms: int = 8 * 3_600_000,
        fixed_rate: float | None = None,
        rate_cap: float = 0.003,
        regimes: Regimes | None = None,
    ) -> None:
        self.spec = spec
        self.regimes = regimes
        self.ticks_followed = 0  # a feed's ticks applied so far
        self.cfg = cfg
        self.rng = rng
        self._crowd_seed = (seed * 1_000_003) ^ zlib.crc32(spec.symbol.encode())
        self.mid = float(spec.cfg.price)
        self.start_price = self.mid
        # the exogenous part of the mid's log move since the start: the walk's own steps
        # (diffusion, jumps, a regime's drift), none of the trades' impact. A measurement only
        # (nothing reads it back): a bench subtracts it as a control variate (bench/exit.py)
        self.walk_log = 0.0
        self.tick_index = 0
        self.last_step_ms = now_ms
        self.data_time_ms = now_ms  # timestamp market-data payloads carry (freezes)
        self.thin = 1.0
        self.update_id = 1_000_000
        self.trade_seq = 0
        self.last_trade_px = spec.price_to_ticks(self.mid)
        self.last_trade_qty = spec.min_qty
        self.candles: deque[Candle] = deque(maxlen=MAX_CANDLES)
        self.on_trade: Callable[[int, int, bool, int], None] | None = None  # tape hook
        # (trade id, price ticks, qty steps, time, buyer is maker)
        self.tape: deque[tuple[int, int, int, int, bool]] = deque(maxlen=TAPE)
        self._stats_key: tuple[int, int] | None = None
        self._stats: tuple[int | None, int, int, float, float, int] = (None, 0, 0, 0.0, 0.0, 0)
        self._crowd_key: tuple[int, float, int, int, int] | None = None
        self.depleted_bids = 0.0  # steps taken from the crowd's bids, not yet refilled
        self.depleted_asks = 0.0
        self._crowd: tuple[list[list[int]], list[list[int]]] = ([], [])
        self.funding_interval_ms = funding_interval_ms
        self.next_funding_ms = (now_ms // funding_interval_ms + 1) * funding_interval_ms
        self.pricing = Pricing.create(
            cfg, self._crowd_seed, self.mid, now_ms, funding_interval_ms, fixed_rate, rate_cap
        )
        self._seed_history(seed, now_ms)
        # before the start, mark and index history repeat the trade candles' prices
        self.mark_candles: deque[Candle] = deque(maxlen=MAX_CANDLES)
        self.index_candles: deque[Candle] = deque(maxlen=MAX_CANDLES)
        for c in self.candles:
            for target in (self.mark_candles, self.index_candles):
                copy = Candle(c.open_ms, c.open)
                copy.high, copy.low, copy.close = c.high, c.low, c.close
                target.append(copy)

    # -- history -----------------------------------------------------------------------
    def _seed_history(self, seed: int, now_ms: int) -> None:
        """Pre-generate 1m klines ending at the start price, so indicators have data."""
        minutes = self.cfg.history_minutes
        cur_open = now_ms - now_ms % MINUTE_MS
        hist_rng = random.Random(self._crowd_seed ^ 0x5A5A5A)
        sigma_min = max(self.cfg.volatility, 1e-6) * math.sqrt(60.0)
        closes = [self.mid]
        for _ in range(minutes):
            closes.append(closes[-1] * math.exp(-sigma_min * hist_rng.gauss(0.0, 1.0)))
        closes.reverse()  # oldest first, last == start price
        spec = self.spec
        for i in range(minutes):
            open_px, close_px = closes[i], closes[i + 1]
            wick = abs(open_px - close_px) + open_px * sigma_min * 0.3 * hist_rng.random()
            candle = Candle(cur_open - (minutes - i) * MINUTE_MS, spec.price_to_ticks(open_px))
            candle.close = spec.price_to_ticks(close_px)
            candle.high = spec.price_to_ticks(max(open_px, close_px) + wick * 0.5)
            candle.low = spec.price_to_ticks(min(open_px, close_px) - wick * 0.5)
            candle.count = hist_rng.randint(20, 400)
            candle.volume = round(candle.count * spec.cfg.taker_qty * hist_rng.uniform(0.5, 1.5), 3)
            candle.quote = candle.volume * (open_px + close_px) / 2
            candle.taker_buy = round(candle.volume * hist_rng.uniform(0.3, 0.7), 3)
            candle.taker_buy_quote = candle.taker_buy * (open_px + close_px) / 2
            self.candles.append(candle)
        self._touch_candle(now_ms, spec.price_to_ticks(self.mid))

    # -- the walk --------------------------------------------------------------------
    def step(self, dt_s: float, now_ms: int, common: CommonShock | None = None) -> bool:
        """Advance the mid by one step of ``dt_s`` seconds; True if a jump happened.

        With a ``common`` shock the walk's normal draw is ``sqrt(rho) x common + sqrt(1 -
        rho) x own`` and the symbol's own jumps come at ``(1 - rho)`` of the rate, the rest
        being the common jumps: every exogenous part of the move correlates by rho."""
        cfg = self.cfg
        jumped = False
        if self.regimes is None:
            vol, jump_rate = cfg.volatility, cfg.jump_rate
        else:
            self.regimes.advance(dt_s, now_ms)
            scale = self.regimes.vol_scale
            vol, jump_rate = cfg.volatility * scale, cfg.jump_rate * scale * scale
            drift = self.regimes.drift(dt_s)
            self.mid *= math.exp(drift)
            self.walk_log += drift
            self.pricing.squeeze = self.regimes.premium
        if vol > 0:
            z = self.rng.gauss(0.0, 1.0)
            if common is not None:
                z = math.sqrt(common.rho) * common.z + math.sqrt(1.0 - common.rho) * z
            move = vol * math.sqrt(dt_s) * z
            self.mid *= math.exp(move)
            self.walk_log += move
        if common is not None:
            jump_rate *= 1.0 - common.rho
        if jump_rate > 0 and self.rng.random() < jump_rate * dt_s:
            size = cfg.jump_size * (0.5 + self.rng.random())
            factor = 1.0 + (size if self.rng.random() < 0.5 else -size)
            self.mid *= factor
            self.walk_log += math.log(factor)
            jumped = True
        if common is not None and common.jump:
            self.mid *= 1.0 + common.jump
            self.walk_log += math.log(1.0 + common.jump)
            jumped = True
        self.mid = max(self.mid, self.spec.tick_f * 10)
        self.advance(dt_s, now_ms)
        return jumped

    def advance(self, dt_s: float, now_ms: int, *, candle: bool = True) -> None:
        """Everything a step does but move the mid: refill, index/mark, candles (a feed's
        ticks touch the trade candles themselves: ``candle=False``)."""
        cfg = self.cfg
        refill = 0.5 ** (dt_s / cfg.book_half_life_s)
        self.depleted_bids *= refill
        self.depleted_asks *= refill
        self.pricing.step(dt_s, now_ms, self.mid)
        self._touch_price_candles(now_ms)
        self.tick_index += 1
        self.data_time_ms = now_ms
        self.update_id += 1
        if candle:
            self._touch_candle(now_ms, self.spec.price_to_ticks(self.mid))

    def rebase(self, price: float, now_ms: int) -> None:
        """Move the whole market, its history included, to ``price`` (a feed's first tick:
        the configured start price gives way to the replayed or live one)."""
        factor = price / self.mid
        self.mid = price
        self.start_price = price
        self.pricing.shift(factor, now_ms)
        for candles in (self.candles, self.mark_candles, self.index_candles):
            for c in candles:
                c.open, c.high, c.low, c.close = (
                    max(1, round(x * factor)) for x in (c.open, c.high, c.low, c.close)
                )
                c.quote *= factor
                c.taker_buy_quote *= factor
        self.last_trade_px = self.spec.price_to_ticks(price)
        self._stats_key = None
        self._crowd_key = None

    def set_mid(self, price: float, now_ms: int) -> None:
        """A feed's price tick: the crowd re-quotes around it; the 1m candle takes it."""
        self.mid = max(price, self.spec.tick_f * 10)
        self.data_time_ms = max(self.data_time_ms, now_ms)
        self._touch_candle(now_ms, self.spec.price_to_ticks(self.mid))

    def quote_touch(self, taker_side: str, price: int) -> None:
        """Re-quote so a taker of ``taker_side`` meets the crowd first at ``price`` (a
        replayed trade printed there): the crowd's best ask (BUY) or best bid (SELL)."""
        spread = self.spec.cfg.crowd_spread_ticks
        bid = price - spread if taker_side == "BUY" else price
        self.mid = (bid + spread / 2 + 0.5) * self.spec.tick_f

    def jump(self, pct: float, now_ms: int) -> None:
        """One-shot move of the mid by ``pct`` percent (a fault or a control call)."""
        before = self.mid
        self.mid = max(self.spec.tick_f * 10, self.mid * (1.0 + pct / 100.0))
        self.pricing.shift(self.mid / before, now_ms)  # the whole market moves, spot too
        self.tick_index += 1
        self.update_id += 1
        self.data_time_ms = now_ms
        # a move happens through trades: the last price follows (CONTRACT_PRICE triggers)
        self.record_trade(self.spec.price_to_ticks(self.mid), self.spec.min_qty, pct > 0, now_ms)

    def taker_draw(self, dt_s: float) -> tuple[str, int] | None:
        """Maybe draw one synthetic taker order for this step: (side, qty in steps)."""
        rate = self.cfg.taker_rate
        if rate <= 0 or self.rng.random() >= rate * dt_s:
            return None
        side = "BUY" if self.rng.random() < 0.5 else "SELL"
        mean_steps = self.spec.cfg.taker_qty / self.spec.step_f
        qty = max(1, int(self.rng.expovariate(1.0 / mean_steps)))
        return side, qty

    # -- prices ------------------------------------------------------------------------
    @property
    def mark(self) -> float:
        """Binance's mark: median(index-based price 1, index + smoothed basis, last)."""
        last = self.spec.px(self.last_trade_px)
        return self.pricing.mark(last, self.data_time_ms, self.next_funding_ms)

    @property
    def index(self) -> float:
        return self.pricing.index

    def impact_prices(self) -> tuple[float | None, float | None]:
        """Average fill prices of a buy and a sell of the Impact Margin Notional (crowd)."""
        bids, asks = self.crowd()
        return (
            _impact(bids, self.cfg.impact_notional, self.spec),
            _impact(asks, self.cfg.impact_notional, self.spec),
        )

    def sample_premium(self, now_ms: int) -> None:
        """Take one premium-index sample if one is due (every 5 s of sim time)."""
        if self.pricing.sample_due(now_ms):
            bid, ask = self.impact_prices()
            self.pricing.add_sample(now_ms, bid, ask)

    def quote_bid(self) -> int:
        """Where the crowd's best bid sits around the mid, before any depletion."""
        return max(
            1, math.floor(self.mid / self.spec.tick_f - self.spec.cfg.crowd_spread_ticks / 2)
        )

    def crowd_best_bid(self) -> int:
        """The crowd's best bid with liquidity (the quote, lower while bids are depleted)."""
        bids = self.crowd()[0]
        return bids[0][0] if bids else self.quote_bid()

    def crowd_best_ask(self) -> int:
        asks = self.crowd()[1]
        return asks[0][0] if asks else self.quote_bid() + self.spec.cfg.crowd_spread_ticks

    # -- the crowd book ----------------------------------------------------------------
    def crowd(self) -> tuple[list[list[int]], list[list[int]]]:
        """Crowd levels ``[[price_ticks, remaining_steps], ...]`` (bids desc, asks asc).

        Sizes are drawn per market step; liquidity takers removed (``depleted``, refilling
        with half-life ``book_half_life_s``) is taken off the top levels, and the crowd
        quotes further levels so that ``crowd_levels`` levels always remain: a sweep moves
        the touch, it never empties a side.
        """
        quote = self.quote_bid()
        key = (self.tick_index, self.thin, quote, int(self.depleted_bids), int(self.depleted_asks))
        if key == self._crowd_key:
            return self._crowd
        scfg = self.spec.cfg
        rng = random.Random(self._crowd_seed + self.tick_index * 2_654_435_761)
        levels = max(1, int(scfg.crowd_levels * self.thin))
        mean_steps = scfg.crowd_level_qty / self.spec.step_f * self.thin
        step = scfg.crowd_level_step_ticks
        bids: list[list[int]] = []
        asks: list[list[int]] = []
        owed = [int(self.depleted_bids), int(self.depleted_asks)]
        i = 0
        while (len(bids) < levels and quote - i * step > 0) or len(asks) < levels:
            grow = 1.0 + 0.05 * min(i, 200)
            for k, (book, px) in enumerate(
                ((bids, quote - i * step), (asks, quote + scfg.crowd_spread_ticks + i * step))
            ):
                size = max(1, int(mean_steps * grow * rng.uniform(0.3, 1.7)))
                if px <= 0 or len(book) >= levels:
                    continue
                eaten = min(size, owed[k])
                owed[k] -= eaten
                if size > eaten:
                    book.append([px, size - eaten])
            i += 1
        self._crowd_key = key
        self._crowd = (bids, asks)
        return self._crowd

    def crowd_head(self, taker_side: str) -> list[int] | None:
        """Best crowd level with liquidity left, on the side a taker of ``taker_side`` hits."""
        bids, asks = self.crowd()
        for level in asks if taker_side == "BUY" else bids:
            if level[1] > 0:
                return level
        return None

    def crowd_qty_at(self, book_side: str, price: int) -> int:
        """Displayed crowd size at ``price`` on the BUY (bids) or SELL (asks) side."""
        bids, asks = self.crowd()
        for px, qty in bids if book_side == "BUY" else asks:
            if px == price:
                return qty
        return 0

    def take_crowd(self, taker_side: str, qty: int) -> None:
        """A taker consumed ``qty`` from the crowd: the book thins there, then refills."""
        if taker_side == "BUY":
            self.depleted_asks += qty
        else:
            self.depleted_bids += qty

    def touch(self, taker_side: str) -> int | None:
        """The price a taker of ``taker_side`` meets first (crowd only)."""
        head = self.crowd_head(taker_side)
        return head[0] if head else None

    def hold_at(self, wall_side: str, price: int) -> None:
        """A user order the crowd could not trade through this step holds the price: the
        crowd re-quotes just beyond it (no crossed book), and trades through again later
        if the price keeps pushing (the next steps' walk)."""
        spread = self.spec.cfg.crowd_spread_ticks
        bid = price + 1 - spread if wall_side == "BUY" else price - 1
        self.mid = (bid + spread / 2 + 0.5) * self.spec.tick_f
        if wall_side == "BUY":
            self.depleted_asks = 0.0
        else:
            self.depleted_bids = 0.0
        self._crowd_key = None

    def settle_impact(self, taker_side: str, before: int | None) -> None:
        """After a taker is done: ``impact_permanent`` of its move of the touch stays.

        The crowd re-quotes around a mid moved by that share (it reacts: the other side
        follows), and the depletion left to refill shrinks by the same share.
        """
        after = self.touch(taker_side)
        if before is None or after is None or after == before:
            return
        keep = self.cfg.impact_permanent
        self.mid += keep * (after - before) * self.spec.tick_f
        if taker_side == "BUY":
            self.depleted_asks *= 1.0 - keep
        else:
            self.depleted_bids *= 1.0 - keep

    # -- trades and klines -------------------------------------------------------------
    def window_stats(self, since_ms: int) -> tuple[int, int, int, float, float, int]:
        """(open, high, low, volume, quote volume, count) of candles after ``since_ms``.

        The closed candles' part is cached per minute, so a 24h ticker costs O(1) instead
        of a walk over 1440 candles on every request.
        """
        last = self.candles[-1]
        first_open = since_ms - since_ms % MINUTE_MS
        key = (first_open, last.open_ms)
        if key != self._stats_key:
            closed = [c for c in self.candles if first_open <= c.open_ms < last.open_ms]
            self._stats = (
                closed[0].open if closed else None,
                max((c.high for c in closed), default=0),
                min((c.low for c in closed), default=0),
                sum(c.volume for c in closed),
                sum(c.quote for c in closed),
                sum(c.count for c in closed),
            )
            self._stats_key = key
        open_px, high, low, volume, quote, count = self._stats
        if open_px is None:
            return (last.open, last.high, last.low, last.volume, last.quote, last.count)
        return (
            open_px,
            max(high, last.high),
            min(low, last.low),
            volume + last.volume,
            quote + last.quote,
            count + last.count,
        )

    def record_trade(self, price: int, qty: int, taker_buys: bool, now_ms: int) -> None:
        self.trade_seq += 1
        self.last_trade_px = price
        self.last_trade_qty = qty
        self.tape.append((self.trade_seq, price, qty, now_ms, not taker_buys))
        self.update_id += 1
        candle = self._touch_candle(now_ms, price)
        base = self.spec.qty(qty)
        quote = base * self.spec.px(price)
        candle.volume += base
        candle.quote += quote
        candle.count += 1
        if taker_buys:
            candle.taker_buy += base
            candle.taker_buy_quote += quote
        if self.on_trade is not None:
            self.on_trade(price, qty, taker_buys, now_ms)

    def _touch_candle(self, now_ms: int, price: int) -> Candle:
        return touch(self.candles, now_ms, price)

    def _touch_price_candles(self, now_ms: int) -> None:
        """Mark and index 1m candles (markPriceKlines / indexPriceKlines)."""
        touch(self.mark_candles, now_ms, self.spec.price_to_ticks(self.mark)).count += 1
        touch(self.index_candles, now_ms, self.spec.price_to_ticks(self.index)).count += 1


def touch(candles: deque[Candle], now_ms: int, price: int) -> Candle:
    """Update the 1m candle of ``now_ms`` with ``price`` (gapless; ignores a clock going back)."""
    open_ms = now_ms - now_ms % MINUTE_MS
    last = candles[-1] if candles else None
    if last is None or open_ms > last.open_ms:
        prev_close = last.close if last is not None else price
        if last is not None:  # fill silent minutes so klines have no gaps
            gap_open = last.open_ms + MINUTE_MS
            while gap_open < open_ms:
                candles.append(Candle(gap_open, prev_close))
                gap_open += MINUTE_MS
        last = Candle(open_ms, prev_close)
        candles.append(last)
    elif open_ms < last.open_ms:
        return last  # the clock went backwards (skew): keep the current candle
    last.close = price
    last.high = max(last.high, price)
    last.low = min(last.low, price)
    return last


def _impact(levels: list[list[int]], notional: float, spec: SymbolSpec) -> float | None:
    """Average price to trade ``notional`` against ``levels``; None if they are too thin."""
    left, qty = notional, 0.0
    for px_ticks, steps in levels:
        px, size = spec.px(px_ticks), spec.qty(steps)
        take = min(size, left / px)
        qty += take
        left -= take * px
        if left <= 1e-9:
            return notional / qty
    return None
