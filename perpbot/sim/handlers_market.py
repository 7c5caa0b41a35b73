"""Public market-data endpoints (no key): exchangeInfo, time, tickers, depth, klines, marks,
the index's constituents.

When the price feed is frozen (a fault), these keep answering but their prices and their
timestamps (ticker ``closeTime``, premiumIndex ``time``, depth ``T``) stop moving, which is
the signature perpbot's stale-feed detection must notice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from perpbot.sim import errors as E
from perpbot.sim import payloads
from perpbot.sim.engine import Engine
from perpbot.sim.market import MINUTE_MS, Candle
from perpbot.sim.routing import Ctx, Route, int_param
from perpbot.sim.spec import fmt_float
from perpbot.sim.trading import book_levels, spec_of
from perpbot.sim.ws_events import DepthSnapshot

DAY_MS = 86_400_000
INTERVALS_MS = {
    "1m": MINUTE_MS,
    "3m": 3 * MINUTE_MS,
    "5m": 5 * MINUTE_MS,
    "15m": 15 * MINUTE_MS,
    "30m": 30 * MINUTE_MS,
    "1h": 60 * MINUTE_MS,
    "2h": 120 * MINUTE_MS,
    "4h": 240 * MINUTE_MS,
    "6h": 360 * MINUTE_MS,
    "8h": 480 * MINUTE_MS,
    "12h": 720 * MINUTE_MS,
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": 7 * DAY_MS,
}
WEEK_OFFSET_MS = 4 * DAY_MS  # the epoch was a Thursday; Binance weeks start on Monday
DEPTH_LIMITS = (5, 10, 20, 50, 100, 500, 1000)


def _data_time(engine: Engine, symbol: str) -> int:
    if engine.faults.frozen(symbol):
        return engine.markets[symbol].data_time_ms
    return engine.clock.now_ms()


def _symbols(engine: Engine, ctx: Ctx) -> list[str] | None:
    """The one requested symbol, or None when the request is for all symbols."""
    return [spec_of(engine, ctx.params)] if ctx.params.get("symbol") else None


def exchange_info(engine: Engine, ctx: Ctx) -> Any:
    return payloads.exchange_info(engine)


def server_time(engine: Engine, ctx: Ctx) -> Any:
    return {"serverTime": engine.clock.now_ms()}


def ping(engine: Engine, ctx: Ctx) -> Any:
    return {}


def _ticker_24h(engine: Engine, symbol: str) -> dict[str, Any]:
    mkt = engine.markets[symbol]
    spec = mkt.spec
    close_time = _data_time(engine, symbol)
    open_time = close_time - DAY_MS
    last = mkt.last_trade_px
    open_px, high, low, volume, quote, count = mkt.window_stats(open_time)
    change = spec.px(last) - spec.px(open_px)
    pct = change / spec.px(open_px) * 100 if open_px else 0.0
    vwap = quote / volume if volume else spec.px(last)
    last_id = 1_000_000 + mkt.trade_seq + count
    return {
        "symbol": symbol,
        "priceChange": spec.fmt_price_f(change),
        "priceChangePercent": f"{pct:.3f}",
        "weightedAvgPrice": spec.fmt_price_f(vwap),
        "lastPrice": spec.fmt_px(last),
        "lastQty": spec.fmt_qty(mkt.last_trade_qty),
        "openPrice": spec.fmt_px(open_px),
        "highPrice": spec.fmt_px(max(high, last)),
        "lowPrice": spec.fmt_px(min(low, last)),
        "volume": f"{volume:.{spec.qp}f}",
        "quoteVolume": f"{quote:.2f}",
        "openTime": open_time,
        "closeTime": close_time,
        "firstId": last_id - count + 1,
        "lastId": last_id,
        "count": count,
    }


def ticker_24h(engine: Engine, ctx: Ctx) -> Any:
    chosen = _symbols(engine, ctx)
    if chosen:
        return _ticker_24h(engine, chosen[0])
    return [_ticker_24h(engine, s) for s in engine.specs]


def _price(engine: Engine, symbol: str) -> dict[str, Any]:
    mkt = engine.markets[symbol]
    return {
        "symbol": symbol,
        "price": mkt.spec.fmt_px(mkt.last_trade_px),
        "time": _data_time(engine, symbol),
    }


def ticker_price(engine: Engine, ctx: Ctx) -> Any:
    chosen = _symbols(engine, ctx)
    if chosen:
        return _price(engine, chosen[0])
    return [_price(engine, s) for s in engine.specs]


def merged_depth(
    engine: Engine, symbol: str, limit: int
) -> tuple[list[list[str]], list[list[str]]]:
    """Crowd plus users' resting orders, aggregated per price level."""
    spec = engine.specs[symbol]
    bids, asks = book_levels(engine, symbol)
    return (
        [[spec.fmt_px(p), spec.fmt_qty(q)] for p, q in bids[:limit]],
        [[spec.fmt_px(p), spec.fmt_qty(q)] for p, q in asks[:limit]],
    )


def depth(engine: Engine, ctx: Ctx) -> Any:
    symbol = spec_of(engine, ctx.params)
    limit = int_param(ctx.params, "limit", 500, 1, 1000) or 500
    limit = next((d for d in DEPTH_LIMITS if d >= limit), 1000)
    engine.emit(DepthSnapshot(symbol))  # lets the diff-depth stream sync to lastUpdateId
    bids, asks = merged_depth(engine, symbol, limit)
    return {
        "lastUpdateId": engine.markets[symbol].update_id,
        "E": engine.clock.now_ms(),
        "T": _data_time(engine, symbol),
        "bids": bids,
        "asks": asks,
    }


def book_ticker(engine: Engine, ctx: Ctx) -> Any:
    def one(symbol: str) -> dict[str, Any]:
        bids, asks = merged_depth(engine, symbol, 1)
        bid = bids[0] if bids else ["0", "0"]
        ask = asks[0] if asks else ["0", "0"]
        return {
            "symbol": symbol,
            "bidPrice": bid[0],
            "bidQty": bid[1],
            "askPrice": ask[0],
            "askQty": ask[1],
            "time": _data_time(engine, symbol),
            "lastUpdateId": engine.markets[symbol].update_id,
        }

    chosen = _symbols(engine, ctx)
    return one(chosen[0]) if chosen else [one(s) for s in engine.specs]


def klines(engine: Engine, ctx: Ctx) -> Any:
    symbol = spec_of(engine, ctx.params)
    return _klines(engine, ctx, symbol, engine.markets[symbol].candles, volumes=True)


def mark_price_klines(engine: Engine, ctx: Ctx) -> Any:
    symbol = spec_of(engine, ctx.params)
    return _klines(engine, ctx, symbol, engine.markets[symbol].mark_candles, volumes=False)


def index_price_klines(engine: Engine, ctx: Ctx) -> Any:
    pair = ctx.params.get("pair")
    if not pair:
        raise E.mandatory("pair")
    if pair not in engine.markets:
        raise E.err(E.INVALID_SYMBOL)
    return _klines(engine, ctx, pair, engine.markets[pair].index_candles, volumes=False)


CONTRACT_TYPES = ("PERPETUAL", "CURRENT_QUARTER", "NEXT_QUARTER", "TRADIFI_PERPETUAL")


def continuous_klines(engine: Engine, ctx: Ctx) -> Any:
    """Klines of the pair's contract of ``contractType``: only perpetuals are listed here,
    so PERPETUAL serves the perpetual's trade klines and a quarterly is an unknown symbol."""
    pair = ctx.params.get("pair")
    if not pair:
        raise E.mandatory("pair")
    contract = ctx.params.get("contractType")
    if not contract:
        raise E.mandatory("contractType")
    if contract not in CONTRACT_TYPES:
        raise E.SimError(-1100, "Illegal characters found in parameter 'contractType'.")
    if pair not in engine.markets or contract != "PERPETUAL":
        raise E.err(E.INVALID_SYMBOL)
    return _klines(engine, ctx, pair, engine.markets[pair].candles, volumes=True)


def _klines(
    engine: Engine, ctx: Ctx, symbol: str, candles: Iterable[Candle], *, volumes: bool
) -> Any:
    """Klines over 1m candles; mark/index klines carry "0" volumes and the sample count."""
    interval = ctx.params.get("interval")
    if not interval:
        raise E.mandatory("interval")
    if interval not in INTERVALS_MS:
        raise E.SimError(-1120, "Invalid interval.")
    size = INTERVALS_MS[interval]
    offset = WEEK_OFFSET_MS if interval == "1w" else 0
    limit = int_param(ctx.params, "limit", 500, 1, 1500) or 500
    start = int_param(ctx.params, "startTime")
    end = int_param(ctx.params, "endTime")
    sym_spec = engine.markets[symbol].spec
    rows: dict[int, list[Any]] = {}
    for c in candles:
        bucket = (c.open_ms - offset) // size * size + offset
        row = rows.get(bucket)
        if row is None:
            rows[bucket] = [
                bucket,
                c.open,
                c.high,
                c.low,
                c.close,
                c.volume,
                c.quote,
                c.count,
                c.taker_buy,
                c.taker_buy_quote,
            ]
            continue
        row[2] = max(row[2], c.high)
        row[3] = min(row[3], c.low)
        row[4] = c.close
        for i in (5, 6, 7, 8, 9):
            row[i] += getattr(
                c, ("volume", "quote", "count", "taker_buy", "taker_buy_quote")[i - 5]
            )
    chosen = [
        r
        for b, r in sorted(rows.items())
        if (start is None or b + size > start) and (end is None or b <= end)
    ]
    chosen = chosen[:limit] if start is not None else chosen[-limit:]
    sp = sym_spec
    qd = sp.pp + sp.qp
    if not volumes:
        return [
            [r[0], sp.fmt_px(r[1]), sp.fmt_px(r[2]), sp.fmt_px(r[3]), sp.fmt_px(r[4]), "0",
             r[0] + size - 1, "0", r[7], "0", "0", "0"]
            for r in chosen
        ]  # fmt: skip
    return [
        [
            r[0],
            sp.fmt_px(r[1]),
            sp.fmt_px(r[2]),
            sp.fmt_px(r[3]),
            sp.fmt_px(r[4]),
            f"{r[5]:.{sp.qp}f}",
            r[0] + size - 1,
            f"{r[6]:.{qd}f}",
            r[7],
            f"{r[8]:.{sp.qp}f}",
            f"{r[9]:.{qd}f}",
            "0",
        ]
        for r in chosen
    ]


def _premium(engine: Engine, symbol: str) -> dict[str, Any]:
    mkt = engine.markets[symbol]
    return {
        "symbol": symbol,
        "markPrice": fmt_float(mkt.mark),
        "indexPrice": fmt_float(mkt.index),
        "estimatedSettlePrice": fmt_float((mkt.mark + mkt.index) / 2),
        "lastFundingRate": fmt_float(engine.funding_rate(symbol)),
        "interestRate": fmt_float(mkt.pricing.interest()),
        "nextFundingTime": mkt.next_funding_ms,
        "time": _data_time(engine, symbol),
    }


def premium_index(engine: Engine, ctx: Ctx) -> Any:
    chosen = _symbols(engine, ctx)
    if chosen:
        return _premium(engine, chosen[0])
    return [_premium(engine, s) for s in engine.specs]


def constituents(engine: Engine, ctx: Ctx) -> Any:
    return index_constituents(engine, spec_of(engine, ctx.params))


def index_constituents(engine: Engine, symbol: str) -> dict[str, Any]:
    """Query Index Price Constituents: the index basket's spot venues (pricing.py), each
    with its last quote and its weight in the basket (the weights add up to 1, as
    Binance's do). A venue that is down or stale keeps its listed weight; the index
    leaves it out while it is (pricing.Pricing.basket)."""
    venues = engine.markets[symbol].pricing.venues
    total = sum(v.weight for v in venues)
    return {
        "symbol": symbol,
        "time": _data_time(engine, symbol),
        "constituents": [
            {
                "exchange": f"spot{i + 1}",
                "symbol": symbol,
                "price": f"{v.price:.8f}",
                "weight": f"{v.weight / total:.8f}",
            }
            for i, v in enumerate(venues)
        ],
    }


ROUTES: dict[tuple[str, str], Route] = {
    ("GET", "/fapi/v1/exchangeInfo"): Route(exchange_info),
    ("GET", "/fapi/v1/time"): Route(server_time),
    ("GET", "/fapi/v1/ping"): Route(ping),
    ("GET", "/fapi/v1/ticker/24hr"): Route(ticker_24h),
    ("GET", "/fapi/v1/ticker/price"): Route(ticker_price),
    ("GET", "/fapi/v2/ticker/price"): Route(ticker_price),
    ("GET", "/fapi/v1/ticker/bookTicker"): Route(book_ticker),
    ("GET", "/fapi/v1/depth"): Route(depth),
    ("GET", "/fapi/v1/klines"): Route(klines),
    ("GET", "/fapi/v1/markPriceKlines"): Route(mark_price_klines),
    ("GET", "/fapi/v1/indexPriceKlines"): Route(index_price_klines),
    ("GET", "/fapi/v1/continuousKlines"): Route(continuous_klines),
    ("GET", "/fapi/v1/premiumIndex"): Route(premium_index),
    ("GET", "/fapi/v1/constituents"): Route(constituents),
}
