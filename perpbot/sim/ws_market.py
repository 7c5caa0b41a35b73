"""Market streams: Binance USD-M stream names and payloads, built from the engine's state.

Every payload is rendered from the same handlers that answer REST (ticker/24hr,
premiumIndex, klines, bookTicker, depth), so a stream and a REST call made at the same
moment agree. Trades and liquidations are pushed as the engine announces them; book,
kline, mark and ticker streams are sampled on their Binance cadences by ``flush``.

Diff depth follows Binance's sync contract: every REST depth snapshot is a checkpoint
(``DepthSnapshot`` event) that gives the book's current content an update id, bumping the
market's ``update_id`` if the content changed without it, so an event with ``u`` >= a
snapshot's ``lastUpdateId`` carries every change the snapshot lacks; events chain by
``pu`` = the previous event's ``u``. Quantities are absolute per level ("0" = removed),
and a level a snapshot saw in a state no event carries is restated in the next event.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from perpbot.sim import handlers_market
from perpbot.sim.engine import Engine
from perpbot.sim.routing import Ctx
from perpbot.sim.ws_events import Liquidated, MarketTrade

Levels = dict[str, str]
PUBLIC_KINDS = frozenset({"depth", "depthN", "bookTicker", "trade"})
_SPEEDS = {"": 250, "@100ms": 100, "@250ms": 250, "@500ms": 500}
_STREAM_RE = re.compile(
    r"^(?P<sym>[a-z0-9]+)@(?:"
    r"(?P<depth>depth(?P<levels>5|10|20)?(?P<speed>@100ms|@250ms|@500ms)?)"
    r"|(?P<kline>kline_(?P<interval>\w+))"
    r"|(?P<mark>markPrice(?P<mark1s>@1s)?)"
    r"|(?P<simple>bookTicker|aggTrade|trade|forceOrder|ticker|miniTicker)"
    r")$"
)
_ALL_RE = re.compile(
    r"^!(?P<kind>markPrice@arr(?:@1s)?|forceOrder@arr|ticker@arr|miniTicker@arr|bookTicker)$"
)


@dataclass(slots=True, frozen=True)
class Stream:
    name: str
    kind: str  # depth | depthN | bookTicker | trade | aggTrade | kline | markPrice | ...
    symbol: str | None  # None for the all-market (!...) streams
    period_ms: int = 0
    levels: int = 0
    interval: str = ""

    @property
    def category(self) -> str:
        """The routed path that carries it on Binance: ``public`` or ``market``."""
        return "public" if self.kind in PUBLIC_KINDS else "market"


def parse_stream(name: str, symbols: dict[str, str]) -> Stream | None:
    """Parse a stream name; ``symbols`` maps lower-case ids to symbols. None if invalid."""
    match = _STREAM_RE.match(name)
    if match is None:
        all_market = _ALL_RE.match(name)
        if all_market is None:
            return None
        kind = all_market["kind"]
        if kind.startswith("markPrice"):
            return Stream(name, "markPrice", None, 1000 if kind.endswith("@1s") else 3000)
        base = {"forceOrder@arr": "forceOrder", "ticker@arr": "ticker"}.get(kind, kind)
        base = base.removesuffix("@arr")
        return Stream(name, base, None, 1000)
    symbol = symbols.get(match["sym"])
    if symbol is None:
        return None
    if match["depth"]:
        speed = _SPEEDS[match["speed"] or ""]
        if match["levels"]:
            return Stream(name, "depthN", symbol, speed, levels=int(match["levels"]))
        return Stream(name, "depth", symbol, speed)
    if match["kline"]:
        if match["interval"] not in handlers_market.INTERVALS_MS:
            return None
        return Stream(name, "kline", symbol, 250, interval=match["interval"])
    if match["mark"]:
        return Stream(name, "markPrice", symbol, 1000 if match["mark1s"] else 3000)
    kind = match["simple"]
    return Stream(name, kind, symbol, 1000 if kind in ("ticker", "miniTicker") else 0)


@dataclass(slots=True)
class _StreamState:
    due_ms: float = 0.0  # wall ms of the next sample; 0 = at the next flush
    levels: tuple[Levels, Levels] | None = None
    last_u: int = 0
    signature: tuple[Any, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)
    symbol: str = ""
    # prices a REST snapshot showed differently from ``levels``: restated in the next event
    dirty: tuple[set[str], set[str]] = field(default_factory=lambda: (set(), set()))


class DepthJournal:
    """Gives each distinct book content an update id (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._seen: dict[str, tuple[Levels, Levels]] = {}
        self._seen_id: dict[str, int] = {}

    def checkpoint(self, symbol: str) -> tuple[Levels, Levels, int]:
        bids_l, asks_l = handlers_market.merged_depth(self.engine, symbol, 1000)
        bids = {price: qty for price, qty in bids_l}
        asks = {price: qty for price, qty in asks_l}
        mkt = self.engine.markets[symbol]
        prev, last_id = self._seen.get(symbol), self._seen_id.get(symbol, 0)
        if prev is not None and prev != (bids, asks) and mkt.update_id <= last_id:
            mkt.update_id = last_id + 1
        self._seen[symbol] = (bids, asks)
        self._seen_id[symbol] = max(mkt.update_id, last_id)
        return bids, asks, self._seen_id[symbol]


def _changed(old: Levels, new: Levels) -> set[str]:
    return {p for p, q in new.items() if old.get(p) != q} | {p for p in old if p not in new}


def _diff(old: Levels, new: Levels, dirty: set[str], zero: str) -> list[list[str]]:
    """Absolute quantities of every level that changed or that a snapshot saw differently."""
    return [[p, new.get(p, zero)] for p in sorted(_changed(old, new) | dirty, key=float)]


class MarketStreams:
    """Renders market payloads; ``publish(stream_name, payload)`` delivers them."""

    def __init__(self, engine: Engine, publish: Callable[[str, Any], None]) -> None:
        self.engine = engine
        self.publish = publish
        self.journal = DepthJournal(engine)
        self.symbols = {s.lower(): s for s in engine.specs}
        self._state: dict[str, _StreamState] = {}

    # -- helpers -------------------------------------------------------------------
    def _rest(self, handler: Any, path: str, **params: str) -> Any:
        return handler(self.engine, Ctx("GET", path, params, None, "127.0.0.1"))

    def parse(self, name: str) -> Stream | None:
        return parse_stream(name, self.symbols)

    def on_subscribe(self, stream: Stream) -> None:
        """Set a diff stream's baseline now, before the client can fetch its snapshot."""
        if stream.kind == "depth" and stream.name not in self._state and stream.symbol:
            bids, asks, u = self.journal.checkpoint(stream.symbol)
            self._state[stream.name] = _StreamState(
                levels=(bids, asks), last_u=u, symbol=stream.symbol
            )

    def on_depth_snapshot(self, symbol: str) -> None:
        """A REST snapshot is being served: checkpoint, and remember what it shows.

        A level that changes after the last event and changes back before the next one
        would be in no event, yet a snapshot taken in between shows it; such levels are
        restated in the next event, whose ``U <= lastUpdateId <= u``.
        """
        bids, asks, _ = self.journal.checkpoint(symbol)
        for state in self._state.values():
            if state.symbol == symbol and state.levels is not None:
                state.dirty[0].update(_changed(state.levels[0], bids))
                state.dirty[1].update(_changed(state.levels[1], asks))

    def forget(self, names: set[str]) -> None:
        for name in list(self._state):
            if name not in names:
                del self._state[name]

    # -- pushed events -------------------------------------------------------------
    def on_event(self, event: object, active: dict[str, Stream]) -> None:
        if isinstance(event, MarketTrade):
            self._trade(event, active)
        elif isinstance(event, Liquidated):
            self._force_order(event, active)

    def _trade(self, ev: MarketTrade, active: dict[str, Stream]) -> None:
        lower = ev.symbol.lower()
        spec = self.engine.specs[ev.symbol]
        now = self.engine.clock.now_ms()
        px, qty = spec.fmt_px(ev.price), spec.fmt_qty(ev.qty)
        maker_is_buyer = not ev.taker_buys
        if f"{lower}@trade" in active:
            self.publish(
                f"{lower}@trade",
                {"e": "trade", "E": now, "T": ev.t, "s": ev.symbol, "t": ev.trade_id,
                 "p": px, "q": qty, "X": "MARKET", "m": maker_is_buyer},
            )  # fmt: skip
        if f"{lower}@aggTrade" in active:
            self.publish(
                f"{lower}@aggTrade",
                {"e": "aggTrade", "E": now, "a": ev.trade_id, "s": ev.symbol, "p": px, "q": qty,
                 "f": ev.trade_id, "l": ev.trade_id, "T": ev.t, "m": maker_is_buyer},
            )  # fmt: skip

    def _force_order(self, ev: Liquidated, active: dict[str, Stream]) -> None:
        rec = ev.record
        symbol = str(rec["symbol"])
        payload = {
            "e": "forceOrder",
            "E": self.engine.clock.now_ms(),
            "o": {
                "s": symbol, "S": rec["side"], "o": "LIMIT", "f": "IOC", "q": rec["qty"],
                "p": rec["price"], "ap": rec["price"], "X": "FILLED", "l": rec["qty"],
                "z": rec["qty"], "T": rec["time"],
            },
        }  # fmt: skip
        for name in (f"{symbol.lower()}@forceOrder", "!forceOrder@arr"):
            if name in active:
                self.publish(name, payload)

    # -- sampled streams -----------------------------------------------------------
    def flush(self, active: dict[str, Stream], wall_ms: float) -> None:
        """Emit every sampled stream that is due (called every ``flush_ms``)."""
        self.forget(set(active))
        books: dict[str, tuple[Levels, Levels, int]] = {}
        for name, stream in active.items():
            state = self._state.setdefault(name, _StreamState(symbol=stream.symbol or ""))
            if stream.period_ms and state.due_ms > wall_ms:
                continue
            if stream.period_ms:
                state.due_ms = wall_ms + stream.period_ms
            kind, symbol = stream.kind, stream.symbol
            symbols = [symbol] if symbol else list(self.engine.specs)
            if kind in ("depth", "depthN", "bookTicker"):
                for sym in symbols:
                    if sym not in books:
                        books[sym] = self.journal.checkpoint(sym)
            if kind == "depth" and symbol:
                self._depth_diff(name, state, symbol, books[symbol])
            elif kind == "depthN" and symbol:
                self._depth_partial(name, state, stream, books[symbol])
            elif kind == "bookTicker":
                for sym in symbols:
                    self._book_ticker(name, state, sym, books[sym])
            elif kind == "kline" and symbol:
                self._kline(name, state, stream)
            elif kind == "markPrice":
                self._mark(name, symbols, symbol is None)
            elif kind in ("ticker", "miniTicker"):
                self._ticker(name, kind, symbols, symbol is None)

    def _now(self) -> int:
        return self.engine.clock.now_ms()

    def _depth_diff(
        self, name: str, state: _StreamState, symbol: str, book: tuple[Levels, Levels, int]
    ) -> None:
        bids, asks, u = book
        if state.levels is None:
            state.levels, state.last_u = (bids, asks), u
            return
        zero = self.engine.specs[symbol].fmt_qty(0)
        b = _diff(state.levels[0], bids, state.dirty[0], zero)
        a = _diff(state.levels[1], asks, state.dirty[1], zero)
        state.dirty[0].clear()
        state.dirty[1].clear()
        if not (a or b):
            return
        now = self._now()
        self.publish(
            name,
            {"e": "depthUpdate", "E": now, "T": now, "s": symbol, "U": state.last_u + 1,
             "u": u, "pu": state.last_u, "b": b, "a": a},
        )  # fmt: skip
        state.levels, state.last_u = (bids, asks), u

    def _depth_partial(
        self, name: str, state: _StreamState, stream: Stream, book: tuple[Levels, Levels, int]
    ) -> None:
        bids, asks, u = book
        n = stream.levels
        now = self._now()
        self.publish(
            name,
            {"e": "depthUpdate", "E": now, "T": now, "s": stream.symbol,
             "U": state.last_u + 1 if state.last_u else u, "u": u, "pu": state.last_u or u - 1,
             "b": [[p, q] for p, q in list(bids.items())[:n]],
             "a": [[p, q] for p, q in list(asks.items())[:n]]},
        )  # fmt: skip
        state.last_u = u

    def _book_ticker(
        self, name: str, state: _StreamState, symbol: str, book: tuple[Levels, Levels, int]
    ) -> None:
        bids, asks, u = book
        bid = next(iter(bids.items()), ("0", "0"))
        ask = next(iter(asks.items()), ("0", "0"))
        signature = (bid, ask)
        if state.extra.get(symbol) == signature:
            return
        state.extra[symbol] = signature
        now = self._now()
        self.publish(
            name,
            {"e": "bookTicker", "u": u, "s": symbol, "b": bid[0], "B": bid[1], "a": ask[0],
             "A": ask[1], "T": now, "E": now},
        )  # fmt: skip

    def _kline(self, name: str, state: _StreamState, stream: Stream) -> None:
        symbol = stream.symbol or ""
        rows = self._rest(
            handlers_market.klines, "/fapi/v1/klines", symbol=symbol,
            interval=stream.interval, limit="2",
        )  # fmt: skip
        if not rows:
            return
        current = rows[-1]
        prev_open = state.extra.get("open")
        if prev_open is not None and current[0] > prev_open and len(rows) > 1:
            self._publish_kline(name, stream, rows[-2], closed=True)
        signature = tuple(current)
        state.extra["open"] = current[0]
        if signature == state.signature:
            return
        state.signature = signature
        self._publish_kline(name, stream, current, closed=False)

    def _publish_kline(self, name: str, stream: Stream, row: list[Any], closed: bool) -> None:
        trade_seq = self.engine.markets[stream.symbol or ""].trade_seq
        self.publish(
            name,
            {"e": "kline", "E": self._now(), "s": stream.symbol,
             "k": {"t": row[0], "T": row[6], "s": stream.symbol, "i": stream.interval,
                   "f": max(0, trade_seq - row[8] + 1), "L": trade_seq, "o": row[1],
                   "c": row[4], "h": row[2], "l": row[3], "v": row[5], "n": row[8],
                   "x": closed, "q": row[7], "V": row[9], "Q": row[10], "B": "0"}},
        )  # fmt: skip

    def _mark(self, name: str, symbols: list[str], as_array: bool) -> None:
        now = self._now()
        out = []
        for sym in symbols:
            p = self._rest(handlers_market.premium_index, "/fapi/v1/premiumIndex", symbol=sym)
            out.append(
                {"e": "markPriceUpdate", "E": now, "s": sym, "p": p["markPrice"],
                 "ap": p["markPrice"], "P": p["estimatedSettlePrice"], "i": p["indexPrice"],
                 "r": p["lastFundingRate"], "T": p["nextFundingTime"]}
            )  # fmt: skip
        self.publish(name, out if as_array else out[0])

    def _ticker(self, name: str, kind: str, symbols: list[str], as_array: bool) -> None:
        now = self._now()
        out = []
        for sym in symbols:
            t = self._rest(handlers_market.ticker_24h, "/fapi/v1/ticker/24hr", symbol=sym)
            body: dict[str, Any] = {
                "e": "24hrMiniTicker" if kind == "miniTicker" else "24hrTicker", "E": now,
                "s": sym,
            }  # fmt: skip
            if kind == "ticker":
                body.update(
                    {"p": t["priceChange"], "P": t["priceChangePercent"],
                     "w": t["weightedAvgPrice"], "c": t["lastPrice"], "Q": t["lastQty"],
                     "o": t["openPrice"], "h": t["highPrice"], "l": t["lowPrice"],
                     "v": t["volume"], "q": t["quoteVolume"], "O": t["openTime"],
                     "C": t["closeTime"], "F": t["firstId"], "L": t["lastId"], "n": t["count"]}
                )  # fmt: skip
            else:
                body.update(
                    {"c": t["lastPrice"], "o": t["openPrice"], "h": t["highPrice"],
                     "l": t["lowPrice"], "v": t["volume"], "q": t["quoteVolume"]}
                )  # fmt: skip
            out.append(body)
        self.publish(name, out if as_array else out[0])
