"""External price feeds for the market: replayed files, or another exchange's live trades.

A feed hands the engine, for one symbol and up to a time, the ticks it has for that span
(``take``); the engine applies them in order, instead of its random walk (engine.sync).
``random`` has no feed: the walk (market.py, with regimes.py) is the source.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Protocol

from perpbot.errors import BadInput
from perpbot.sim.config import SimConfig
from perpbot.sim.replay_files import Tick, infer, read


class Feed(Protocol):
    trades: bool  # True: the feed's ticks are the taker flow (the synthetic one stops)

    def covers(self, symbol: str) -> bool: ...  # False: the symbol keeps its random walk

    def first(self, symbol: str) -> Tick | None: ...

    def take(self, symbol: str, until_ms: int) -> list[Tick]: ...


class ReplayFeed:
    """Binance files, merged by time per symbol, read lazily (a month of aggTrades is
    tens of millions of rows: never held in memory)."""

    def __init__(self, files: dict[str, list[tuple[Path, str]]]) -> None:
        self.shift_ms = 0  # added to every tick's time (shift_to_now)
        self._streams: dict[str, Iterator[Tick]] = {}
        self._next: dict[str, Tick | None] = {}
        kinds = {kind for group in files.values() for _, kind in group}
        self.trades = kinds == {"aggTrades"}
        for symbol, group in files.items():
            streams = [read(path, kind) for path, kind in group]
            merged = heapq.merge(*streams, key=lambda tick: tick.t)
            self._streams[symbol] = merged
            self._next[symbol] = next(merged, None)

    def covers(self, symbol: str) -> bool:
        return symbol in self._streams

    def first(self, symbol: str) -> Tick | None:
        return self._next.get(symbol)

    def start_ms(self) -> int | None:
        times = [tick.t for tick in self._next.values() if tick is not None]
        return min(times) if times else None

    def take(self, symbol: str, until_ms: int) -> list[Tick]:
        out: list[Tick] = []
        until = until_ms - self.shift_ms
        tick = self._next.get(symbol)
        if tick is None or tick.t > until:
            return out
        stream = self._streams[symbol]
        while tick is not None and tick.t <= until:
            tick.t += self.shift_ms
            out.append(tick)
            tick = next(stream, None)
        self._next[symbol] = tick
        return out

    def exhausted(self) -> bool:
        return all(tick is None for tick in self._next.values())


class QueueFeed:
    """Ticks pushed in as they arrive (the live source's watcher tasks push here)."""

    trades = True

    def __init__(self, now_ms: Callable[[], int], symbols: Iterable[str]) -> None:
        self._now_ms = now_ms
        self._queues: dict[str, deque[Tick]] = {symbol: deque() for symbol in symbols}
        self.received = 0

    def push(self, symbol: str, price: float, qty: float, taker_buys: bool) -> None:
        """A trade seen upstream; it happens in the simulator now (its clock, not theirs)."""
        self._queues[symbol].append(Tick(self._now_ms(), price, qty, taker_buys))
        self.received += 1

    def covers(self, symbol: str) -> bool:
        return symbol in self._queues

    def first(self, symbol: str) -> Tick | None:
        return None  # the first live trade re-bases the market when it arrives

    def take(self, symbol: str, until_ms: int) -> list[Tick]:
        queue = self._queues.get(symbol)
        out: list[Tick] = []
        while queue and queue[0].t <= until_ms:
            out.append(queue.popleft())
        return out


def replay_feed(cfg: SimConfig) -> ReplayFeed:
    """The replay feed of ``cfg.source.files``; BadInput for files naming unknown symbols."""
    known = {s.symbol for s in cfg.symbols}
    groups: dict[str, list[tuple[Path, str]]] = {}
    for f in cfg.source.files:
        symbol, kind = (f.symbol, f.kind) if f.symbol and f.kind else infer(f.path)
        symbol, kind = f.symbol or symbol, f.kind or kind
        if symbol not in known:
            raise BadInput(
                f"{f.path.name}: symbol {symbol} is not in the simulator's symbols"
                f" ({', '.join(sorted(known))}); add a [[symbols]] entry for it"
            )
        groups.setdefault(symbol, []).append((f.path, kind))
    return ReplayFeed(groups)
