"""The index basket: one reference price per symbol from several sources, robust to a bad one.

Each source (a venue and a symbol there) is polled for a price and the timestamp the venue
put on it. A source is *stale* when that timestamp is older than ``[index] max_age_s`` (a
frozen feed keeps answering with old data), *in error* when its last fetches failed for
longer than that, and an *outlier* when it sits further from the median of the fresh sources
than ``outlier_mads`` median absolute deviations (and than ``outlier_floor_pct``). Fresh
sources that still disagree by more than ``max_dispersion_pct`` (two sources, one of them
wrong: there is no majority) are all *disputed*. The reference is the median of the good
ones. The basket is healthy with at least ``min_sources`` good sources; otherwise the bot
goes reduce-only (or trips the kill switch) and says why.

``aggregate`` is the pure maths (unit-tested, benchmarked); ``IndexBasket`` polls, keeps the
last reading in the RiskState and publishes every change of a source or of the basket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from perpbot.config import IndexSection
from perpbot.events import Decision, EventBus
from perpbot.risk.state import RiskState

MAD_SCALE = 1.4826  # MAD -> standard deviation for normal data
Status = Literal["good", "stale", "outlier", "disputed", "error", "missing"]


@dataclass(frozen=True, slots=True)
class Quote:
    source: str
    price: float | None
    ts: float | None  # the venue's timestamp of the data (seconds); None if it gives none
    fetched: float  # local time of the fetch that produced it
    error: str | None = None  # the last fetch failed (the price is the last good one)
    error_since: float | None = None


@dataclass(frozen=True, slots=True)
class SourceStatus:
    name: str
    price: float | None
    age_s: float | None
    status: Status
    note: str


@dataclass(frozen=True, slots=True)
class IndexReading:
    symbol: str
    price: float | None
    healthy: bool
    good: int
    total: int
    reason: str
    sources: tuple[SourceStatus, ...]
    ts: float

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["sources"] = [asdict(s) for s in self.sources]
        return d


def median(values: Sequence[float]) -> float:
    s = sorted(values)
    n = len(s)
    mid = n // 2
    return s[mid] if n % 2 else (s[mid - 1] + s[mid]) / 2.0


def _status(q: Quote, now: float, cfg: IndexSection) -> tuple[Status, float | None, str]:
    if q.price is None:
        return ("error", None, q.error or "no price yet") if q.error else ("missing", None, "")
    age = now - (q.ts if q.ts is not None else q.fetched)
    if q.error and q.error_since is not None and now - q.error_since > cfg.max_age_s:
        return "error", age, f"failing for {now - q.error_since:.1f} s ({q.error})"
    if age > cfg.max_age_s:
        return "stale", age, f"data {age:.1f} s old > max_age_s {cfg.max_age_s:g}"
    return "good", age, ""


def aggregate(symbol: str, quotes: Sequence[Quote], now: float, cfg: IndexSection) -> IndexReading:
    """The basket's reading from the sources' latest quotes (pure)."""
    rows: list[list[Any]] = []  # [name, price, age, status, note]
    for q in quotes:
        status, age, note = _status(q, now, cfg)
        rows.append([q.source, q.price, age, status, note])
    fresh = [r[1] for r in rows if r[3] == "good"]
    if fresh:
        m = median(fresh)
        mad = median([abs(p - m) for p in fresh]) * MAD_SCALE
        limit = max(cfg.outlier_mads * mad, cfg.outlier_floor_pct / 100.0 * m)
        for r in rows:
            if r[3] == "good" and abs(r[1] - m) > limit:
                r[3] = "outlier"
                r[4] = f"{(r[1] - m) / m * 100:+.2f} % from the median {m:.8g}"
    good = [r[1] for r in rows if r[3] == "good"]
    if len(good) >= 2:
        spread = (max(good) - min(good)) / median(good) * 100
        if spread > cfg.max_dispersion_pct:  # no majority to tell which one is wrong
            for r in rows:
                if r[3] == "good":
                    r[3] = "disputed"
                    r[4] = (
                        f"the fresh sources disagree by {spread:.2f} % > max_dispersion_pct "
                        f"{cfg.max_dispersion_pct:g} %"
                    )
            good = []
    price = median(good) if good else None
    total = len(rows)
    sources = tuple(SourceStatus(r[0], r[1], r[2], r[3], r[4]) for r in rows)
    notes = {s.note for s in sources if s.status == "disputed"}
    bad = "; ".join(
        [
            f"{s.name}: {s.status}{', ' + s.note if s.note else ''}"
            for s in sources
            if s.status not in ("good", "disputed")
        ]
        + [f"{', '.join(s.name for s in sources if s.status == 'disputed')}: {n}" for n in notes]
    )
    healthy = len(good) >= cfg.min_sources
    if healthy:
        reason = f"{len(good)} of {total} sources good" + (f" ({bad})" if bad else "")
    else:
        reason = (
            f"the {symbol} index has {len(good)} good source{'s' if len(good) != 1 else ''} of "
            f"{total}, fewer than [index] min_sources {cfg.min_sources}"
            + (f" ({bad})" if bad else "")
        )
    return IndexReading(symbol, price, healthy, len(good), total, reason, sources, now)


# -- sources ----------------------------------------------------------------------------------
Fetch = Callable[[], Awaitable[tuple[float | None, float | None]]]


class IndexSource:
    """One polled price: ``fetch`` returns (price, venue timestamp in seconds)."""

    def __init__(self, name: str, symbol: str, fetch: Fetch, timeout_s: float) -> None:
        self.name = name
        self.symbol = symbol  # the bot symbol it prices
        self._fetch = fetch
        self.timeout_s = timeout_s
        self.quote = Quote(name, None, None, 0.0)

    async def poll(self) -> Quote:
        now = time.time()
        try:
            price, ts = await asyncio.wait_for(self._fetch(), self.timeout_s)
            if price is None or price <= 0:
                raise ValueError("no price in the answer")
            self.quote = Quote(self.name, float(price), ts, now)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            q = self.quote
            since = q.error_since if q.error else now
            error = f"{type(exc).__name__}"
            self.quote = Quote(self.name, q.price, q.ts, q.fetched, error, since)
        return self.quote


def client_fetch(client: Any, symbol: str, kind: str, state: RiskState | None = None) -> Fetch:
    """A Fetch reading ``kind`` (index, mark, last, mid) through a GuardedClient."""

    def ts_of(obj: dict[str, Any]) -> float | None:
        ms = obj.get("timestamp")
        return float(ms) / 1000.0 if ms else None

    async def fetch() -> tuple[float | None, float | None]:
        if kind in ("index", "mark"):
            fr = await client.fetch_funding_rate(symbol)
            if state is not None:
                state.premium[symbol] = (time.time(), fr)
            raw = fr.get("indexPrice" if kind == "index" else "markPrice")
            return (float(raw) if raw else None), ts_of(fr)
        if kind == "last":
            t = await client.fetch_ticker(symbol)
            return (float(t["last"]) if t.get("last") else None), ts_of(t)
        book = await client.fetch_order_book(symbol, 5)
        if not book.get("bids") or not book.get("asks"):
            return None, ts_of(book)
        return (book["bids"][0][0] + book["asks"][0][0]) / 2.0, ts_of(book)

    return fetch


# -- the basket -------------------------------------------------------------------------------
class IndexBasket:
    def __init__(
        self,
        cfg: IndexSection,
        sources: Sequence[IndexSource],
        state: RiskState,
        bus: EventBus,
    ) -> None:
        self.cfg = cfg
        self.sources = list(sources)
        self.state = state
        self.bus = bus
        self.symbols = sorted({s.symbol for s in self.sources})
        self._source_status: dict[tuple[str, str], Status] = {}
        self.polls = 0

    async def poll_once(self) -> dict[str, IndexReading]:
        await asyncio.gather(*(s.poll() for s in self.sources))
        now = time.time()
        readings = {}
        for symbol in self.symbols:
            quotes = [s.quote for s in self.sources if s.symbol == symbol]
            reading = aggregate(symbol, quotes, now, self.cfg)
            self._publish_changes(self.state.index.get(symbol), reading)
            self.state.index[symbol] = reading
            readings[symbol] = reading
        self.polls += 1
        return readings

    async def run(self, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        while True:
            await sleep(self.cfg.poll_interval_s)
            await self.poll_once()

    # -- explaining changes -------------------------------------------------------------------
    def _decision(self, action: Any, code: str, sentence: str, data: dict[str, Any]) -> None:
        self.bus.publish(Decision("index", action, code, sentence, data))

    def _publish_changes(self, before: IndexReading | None, after: IndexReading) -> None:
        sym = after.symbol
        for s in after.sources:
            key = (sym, s.name)
            old = self._source_status.get(key)
            self._source_status[key] = s.status
            alert_key = f"index:{sym}:{s.name}"
            if s.status == old or (old is None and s.status == "good"):
                continue
            if s.status == "good":
                self.state.clear_alert(alert_key)
                self._decision(
                    "info",
                    "INDEX_SOURCE_RECOVERED",
                    f"index source {s.name} for {sym} is good again ({s.price:.8g})",
                    {"symbol": sym, "source": s.name},
                )
                continue
            if s.status == "missing":
                continue
            code = {
                "stale": "INDEX_SOURCE_STALE",
                "outlier": "INDEX_SOURCE_OUTLIER",
                "disputed": "INDEX_SOURCE_DISPUTED",
            }.get(s.status, "INDEX_SOURCE_ERROR")
            sentence = (
                f"index source {s.name} for {sym} is {s.status} ({s.note}) and is left out; "
                f"the reference is now {after.price:.8g}"
                if after.price is not None
                else f"index source {s.name} for {sym} is {s.status} ({s.note}) and is left out"
            )
            data = {"symbol": sym, "source": s.name, "status": s.status, "trip": False}
            self.state.raise_alert(alert_key, "index", code, sentence, data=data)
            self._decision("alert", code, sentence, data)
        was_healthy = before.healthy if before is not None else None
        if not after.healthy and was_healthy is False:  # still unhealthy: keep the why current
            self.state.hold_reduce_only(sym, after.reason)
        if after.healthy == was_healthy or (was_healthy is None and after.healthy):
            return
        key = f"index:{sym}"
        if after.healthy:
            self.state.release_reduce_only(sym)
            self.state.clear_alert(key)
            self._decision(
                "info",
                "INDEX_RECOVERED",
                f"the {sym} index is healthy again ({after.reason}); orders that add "
                "exposure are allowed again",
                {"symbol": sym, "price": after.price},
            )
            return
        kill = self.cfg.on_unhealthy == "kill"
        self.state.hold_reduce_only(sym, after.reason)
        then = "tripping the kill switch" if kill else f"the bot is reduce-only on {sym}"
        sentence = f"{after.reason}: {then} until it recovers"
        data = {"symbol": sym, "good": after.good, "total": after.total, "trip": kill}
        self.state.raise_alert(key, "index", "INDEX_UNHEALTHY", sentence, trip=kill, data=data)
        self._decision("alert", "INDEX_UNHEALTHY", sentence, data)
