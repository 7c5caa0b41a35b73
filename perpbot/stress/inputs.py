"""The stress scenario: what the model needs, loaded from a TOML or JSON file.

Every value the file leaves out falls back to a stated default, and the scenario keeps a
list of those assumptions, so the output can print what it assumed instead of hiding it.
"""

from __future__ import annotations

import json
import math
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbot.errors import BadInput

# Defaults, each printed as an assumption when used (docs/stress.md says where they come from)
DEFAULT_LEVERAGE_MEDIAN = 10.0
DEFAULT_LEVERAGE_SIGMA = 0.6
DEFAULT_LEVERAGE_MAX = 125.0
DEFAULT_MMR = 0.004  # Binance's first maintenance-margin bracket for BTCUSDT
DEFAULT_ENTRY_SPREAD = 0.002
DEFAULT_MARK_SOURCES_S = (1.0,)  # Binance publishes the mark price every second
DEFAULT_IMPACT_PERMANENT = 0.3
DEFAULT_BOOK_HALF_LIFE_S = 5.0
DEFAULT_HORIZON_S = 300.0
DEFAULT_SIZE_SIGMA = 0.8
DEFAULT_POSITIONS = 1000  # positions the open interest is split into, unless stated
DEFAULT_SHOCKS = (-1.0, -2.0, -3.0, -5.0, 1.0, 2.0, 3.0, 5.0)


@dataclass(slots=True)
class Position:
    """One of this account's positions (amount signed: long > 0), in base units."""

    symbol: str
    amount: float
    entry: float
    liq_price: float


@dataclass(slots=True)
class Book:
    """A depth snapshot: levels (price, base quantity), best first."""

    symbol: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]

    @property
    def mid(self) -> float:
        return (self.bids[0][0] + self.asks[0][0]) / 2


@dataclass(slots=True)
class Crowd:
    """The other traders' leveraged positions in one symbol, as a distribution.

    ``open_interest``: the crowd's positions in base units, both sides added (twice the
    open interest an exchange publishes, where every long has a short);
    leverage log-normal with median ``leverage_median`` and log-stdev ``leverage_sigma``,
    capped at ``leverage_max``; entries spread around the current price by
    ``entry_spread`` (a relative stdev); ``long_share`` of the open interest is long;
    ``position_size``: the mean size of one position (each liquidates as one order), sizes
    log-normal with log-stdev ``position_size_sigma``.
    """

    open_interest: float
    position_size: float = 0.0  # 0: open_interest / DEFAULT_POSITIONS
    position_size_sigma: float = DEFAULT_SIZE_SIGMA  # log-stdev of the positions' sizes
    long_share: float = 0.5
    leverage_median: float = DEFAULT_LEVERAGE_MEDIAN
    leverage_sigma: float = DEFAULT_LEVERAGE_SIGMA
    leverage_max: float = DEFAULT_LEVERAGE_MAX
    mmr: float = DEFAULT_MMR
    entry_spread: float = DEFAULT_ENTRY_SPREAD


@dataclass(slots=True)
class Dynamics:
    """How the market reacts: how often the mark's sources take up the traded price, the
    share of a sweep's move that stays, the book's refill half-life, the insurance fund
    (quote), how long to follow the cascade."""

    mark_sources_s: tuple[float, ...] = DEFAULT_MARK_SOURCES_S
    impact_permanent: float = DEFAULT_IMPACT_PERMANENT
    book_half_life_s: float = DEFAULT_BOOK_HALF_LIFE_S
    insurance_fund: float | None = None
    basis_window_s: float = 30.0  # Binance's mark: a 30-second moving average of the basis
    horizon_s: float = DEFAULT_HORIZON_S
    engine_step_s: float = 0.0  # the exchange's price/liquidation clock; 0: continuous
    # the share of rho x a liquidation's lasting move passed on to a correlated symbol
    # (cross-impact); 0: correlated symbols share only the shock itself
    cross_impact: float = 1.0
    mark_source_weights: tuple[float, ...] = ()  # the index's weights; () equal
    # one symbol's own index weights (its exchange's constituents), over the shared ones
    symbol_weights: dict[str, tuple[float, ...]] = field(default_factory=dict)

    def source_weights(self, symbol: str = "") -> tuple[float, ...]:
        weights = self.symbol_weights.get(symbol, self.mark_source_weights)
        if len(weights) == len(self.mark_sources_s):
            return weights
        return (1.0,) * len(self.mark_sources_s)

    def requote_every(self, every_s: float) -> float:
        """A source's effective interval: it requotes at the first step of the exchange's
        clock at least ``every_s`` after its last quote (every step when continuous)."""
        step = self.engine_step_s
        return every_s if step <= 0 else math.ceil(every_s / step - 1e-9) * step


@dataclass(slots=True)
class Scenario:
    positions: list[Position]
    books: dict[str, Book]
    crowd: dict[str, Crowd]
    correlations: dict[tuple[str, str], float] = field(default_factory=dict)
    latency_s: float = 0.5
    dynamics: Dynamics = field(default_factory=Dynamics)
    shocks: list[float] = field(default_factory=lambda: list(DEFAULT_SHOCKS))
    shock_symbol: str = ""
    assumptions: list[str] = field(default_factory=list)

    def correlation(self, a: str, b: str) -> float:
        if a == b:
            return 1.0
        return self.correlations.get((a, b), self.correlations.get((b, a), 0.0))


# -- reading a file ----------------------------------------------------------------------------
def load_file(path: Path) -> Scenario:
    """A scenario from ``path`` (``.json``, else TOML); BadInput (exit 2) on any problem."""
    return from_document(read_document(path), where=str(path))


def read_document(path: Path) -> dict[str, Any]:
    """The parsed file (``.json``, else TOML); BadInput on an unreadable or invalid file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() == ".json":
            doc = json.loads(raw)
        else:
            doc = tomllib.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        kind = "JSON" if path.suffix.lower() == ".json" else "TOML"
        raise BadInput(f"{path}: not valid {kind} ({str(exc).splitlines()[0]})") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{path}: expected a table/object at the top")
    return doc


def from_document(doc: dict[str, Any], *, where: str) -> Scenario:
    r = _Reader(where)
    known = {
        "positions",
        "books",
        "crowd",
        "correlations",
        "latency_ms",
        "dynamics",
        "shocks",
        "shock_symbol",
    }
    r.no_extra(doc, known, "")
    books = {sym: r.book(sym, body) for sym, body in r.table(doc, "books").items()}
    if not books:
        raise BadInput(f"{where}: [books]: at least one symbol's depth is needed")
    positions = [r.position(i, p) for i, p in enumerate(r.array(doc, "positions"))]
    for p in positions:
        if p.symbol not in books:
            raise BadInput(f"{where}: positions: {p.symbol} has no [books.{p.symbol}] depth")
    crowd_doc = r.table(doc, "crowd")
    for sym in crowd_doc:
        if sym not in books:
            raise BadInput(f"{where}: [crowd.{sym}]: no [books.{sym}] depth for that symbol")
    scenario = Scenario(positions=positions, books=books, crowd={})
    for sym, book in books.items():
        scenario.crowd[sym] = r.crowd(sym, crowd_doc.get(sym), book, scenario.assumptions)
    for pair, rho in r.table(doc, "correlations").items():
        a, _, b = pair.partition("/")
        if a not in books or b not in books:
            raise BadInput(f"{where}: correlations: {pair!r}: expected SYMBOL/SYMBOL from [books]")
        scenario.correlations[(a, b)] = r.number(rho, f"correlations.{pair}", lo=-1.0, hi=1.0)
    if len(books) > 1 and not scenario.correlations:
        scenario.assumptions.append(
            "correlations: none given, so a cascade in one symbol does not move the others"
        )
    cross_stated = "cross_impact" in r.table(doc, "dynamics")
    if scenario.correlations and not cross_stated:
        scenario.assumptions.append(
            "a liquidation's lasting move passes to a correlated symbol in full, rho x the "
            "move (cross_impact = 1; 0: correlated symbols share only the shock)"
        )
    if "latency_ms" in doc:
        scenario.latency_s = r.number(doc["latency_ms"], "latency_ms", lo=0.0, hi=600_000) / 1000
    else:
        scenario.assumptions.append("latency: 500 ms for the bot to act (latency_ms)")
    scenario.dynamics = r.dynamics(r.table(doc, "dynamics"), list(books), scenario.assumptions)
    for sym in scenario.dynamics.symbol_weights:
        if sym not in books:
            raise BadInput(f"{where}: dynamics.mark_source_weights.{sym}: no [books.{sym}] depth")
    if "shocks" in doc:
        scenario.shocks = [
            r.number(s, "shocks[]", lo=-90.0, hi=900.0) for s in r.array(doc, "shocks")
        ]
        if not scenario.shocks or any(s == 0 for s in scenario.shocks):
            raise BadInput(f"{where}: shocks: expected non-zero percentages, e.g. [-2, -5]")
    scenario.shock_symbol = str(doc.get("shock_symbol") or default_shock_symbol(scenario))
    if scenario.shock_symbol not in books:
        raise BadInput(f"{where}: shock_symbol: {scenario.shock_symbol!r} has no [books] depth")
    return scenario


def default_shock_symbol(scenario: Scenario) -> str:
    """The symbol of the largest position (by notional), else the first book's."""
    if scenario.positions:
        return max(scenario.positions, key=lambda p: abs(p.amount) * p.entry).symbol
    return next(iter(scenario.books))


def liq_from_leverage(amount: float, entry: float, leverage: float, mmr: float) -> float:
    """Isolated-margin liquidation price of a position opened at ``leverage``."""
    cushion = 1.0 / leverage - mmr
    return entry * (1.0 - cushion) if amount > 0 else entry * (1.0 + cushion)


class _Reader:
    """Checks one document's fields; every complaint names the file and the field."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, text: str) -> BadInput:
        return BadInput(f"{self.where}: {text}")

    def no_extra(self, doc: dict[str, Any], known: set[str], name: str) -> None:
        extra = sorted(set(doc) - known)
        if extra:
            where = f"[{name}] " if name else ""
            expected = ", ".join(sorted(known))
            raise self.fail(f"{where}unknown key {extra[0]!r} (expected: {expected})")

    def table(self, doc: dict[str, Any], key: str) -> dict[str, Any]:
        value = doc.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(f"{key}: expected a table")
        return value

    def array(self, doc: dict[str, Any], key: str) -> list[Any]:
        value = doc.get(key, [])
        if not isinstance(value, list):
            raise self.fail(f"{key}: expected an array")
        return value

    def number(
        self, value: Any, name: str, *, lo: float | None = None, hi: float | None = None
    ) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{name}: expected a number, got {value!r}")
        out = float(value)
        if out != out or (lo is not None and out < lo) or (hi is not None and out > hi):
            raise self.fail(f"{name}: got {value!r}, expected a number in [{lo:g}, {hi:g}]")
        return out

    def levels(self, value: Any, name: str) -> list[tuple[float, float]]:
        if not isinstance(value, list) or not value:
            raise self.fail(f"{name}: expected [[price, quantity], ...] with at least one level")
        out = []
        for level in value:
            if not isinstance(level, list | tuple) or len(level) < 2:
                raise self.fail(f"{name}: expected [price, quantity] pairs, got {level!r}")
            px = self.number(_num(level[0]), f"{name} price", lo=1e-12, hi=1e12)
            qty = self.number(_num(level[1]), f"{name} quantity", lo=0.0, hi=1e15)
            out.append((px, qty))
        return out

    def book(self, symbol: str, body: Any) -> Book:
        if not isinstance(body, dict):
            raise self.fail(f"[books.{symbol}]: expected a table with bids and asks")
        self.no_extra(body, {"bids", "asks"}, f"books.{symbol}")
        bids = sorted(self.levels(body.get("bids"), f"books.{symbol}.bids"), reverse=True)
        asks = sorted(self.levels(body.get("asks"), f"books.{symbol}.asks"))
        if bids[0][0] >= asks[0][0]:
            raise self.fail(f"[books.{symbol}]: crossed book (best bid >= best ask)")
        return Book(symbol, bids, asks)

    def position(self, i: int, body: Any) -> Position:
        name = f"positions[{i}]"
        if not isinstance(body, dict):
            raise self.fail(f"{name}: expected a table")
        self.no_extra(
            body, {"symbol", "amount", "entry", "liquidation_price", "leverage", "mmr"}, name
        )
        symbol = body.get("symbol")
        if not isinstance(symbol, str) or not symbol:
            raise self.fail(f"{name}.symbol: expected a symbol name")
        amount = self.number(body.get("amount"), f"{name}.amount", lo=-1e12, hi=1e12)
        if amount == 0:
            raise self.fail(f"{name}.amount: expected a non-zero signed amount (long > 0)")
        entry = self.number(body.get("entry"), f"{name}.entry", lo=1e-12, hi=1e12)
        if "liquidation_price" in body:
            liq = self.number(
                body["liquidation_price"], f"{name}.liquidation_price", lo=0.0, hi=1e12
            )
        elif "leverage" in body:
            lev = self.number(body["leverage"], f"{name}.leverage", lo=1.0, hi=200.0)
            mmr = self.number(body.get("mmr", DEFAULT_MMR), f"{name}.mmr", lo=0.0, hi=0.5)
            liq = liq_from_leverage(amount, entry, lev, mmr)
        else:
            raise self.fail(f"{name}: expected liquidation_price or leverage")
        if (amount > 0 and liq >= entry) or (amount < 0 and 0 < liq <= entry):
            raise self.fail(f"{name}.liquidation_price: {liq:g} is on the wrong side of the entry")
        return Position(symbol, amount, entry, liq)

    def crowd(self, symbol: str, body: Any, book: Book, notes: list[str]) -> Crowd:
        name = f"crowd.{symbol}"
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise self.fail(f"[{name}]: expected a table")
        fields = {
            "open_interest",
            "long_share",
            "leverage_median",
            "leverage_sigma",
            "leverage_max",
            "mmr",
            "entry_spread",
            "position_size",
            "position_size_sigma",
        }
        self.no_extra(body, fields, name)
        if "open_interest" in body:
            oi = self.number(body["open_interest"], f"{name}.open_interest", lo=0.0, hi=1e15)
        else:  # no public figure: a crowd 50x the book's visible depth, said out loud
            visible = sum(q for _, q in book.bids) + sum(q for _, q in book.asks)
            oi = 50.0 * visible
            notes.append(f"{symbol} open interest: {oi:g} (50x the visible book depth)")
        crowd = Crowd(open_interest=oi)
        limits = {
            "long_share": (0.0, 1.0),
            "position_size": (1e-12, 1e15),
            "position_size_sigma": (0.0, 3.0),
            "leverage_median": (1.0, 125.0),
            "leverage_sigma": (0.0, 3.0),
            "leverage_max": (1.0, 200.0),
            "mmr": (0.0, 0.5),
            "entry_spread": (0.0, 0.5),
        }
        for key, (lo, hi) in limits.items():
            if key in body:
                setattr(crowd, key, self.number(body[key], f"{name}.{key}", lo=lo, hi=hi))
        if "leverage_median" not in body:
            notes.append(
                f"{symbol} crowd leverage: log-normal, median {crowd.leverage_median:g}x, "
                f"log-stdev {crowd.leverage_sigma:g}, capped at {crowd.leverage_max:g}x"
            )
        if "position_size" not in body:
            crowd.position_size = oi / DEFAULT_POSITIONS
            notes.append(
                f"{symbol} crowd positions: {DEFAULT_POSITIONS} of {crowd.position_size:g} each "
                "(each liquidates as one market order)"
            )
        if "long_share" not in body:
            notes.append(f"{symbol} crowd: half long, half short")
        return crowd

    def weights(self, raw: Any, name: str, dyn: Dynamics) -> tuple[float, ...]:
        items = raw if isinstance(raw, list) else [raw]
        if len(items) != len(dyn.mark_sources_s):
            raise self.fail(f"{name}: expected one weight per mark_sources_s entry")
        return tuple(self.number(x, name, lo=1e-9, hi=1e9) for x in items)

    def dynamics(self, body: dict[str, Any], symbols: list[str], notes: list[str]) -> Dynamics:
        fields = {
            "impact_permanent": (0.0, 1.0),
            "book_half_life_s": (0.01, 86_400.0),
            "insurance_fund": (0.0, 1e15),
            "basis_window_s": (0.1, 3600.0),
            "horizon_s": (1.0, 86_400.0),
            "engine_step_s": (0.0, 60.0),
            "cross_impact": (0.0, 1.0),
        }
        self.no_extra(body, {*fields, "mark_sources_s", "mark_source_weights"}, "dynamics")
        dyn = Dynamics()
        if "mark_sources_s" in body:
            raw = body["mark_sources_s"]
            items = raw if isinstance(raw, list) else [raw]
            if not items or len(items) > 50:
                raise self.fail("dynamics.mark_sources_s: expected 1 to 50 intervals (seconds)")
            dyn.mark_sources_s = tuple(
                self.number(x, "dynamics.mark_sources_s", lo=0.01, hi=600.0) for x in items
            )
        if "mark_source_weights" in body:
            raw = body["mark_source_weights"]
            if isinstance(raw, dict):  # per symbol: {"BTCUSDT": [...], ...}
                dyn.symbol_weights = {
                    str(sym): self.weights(w, f"dynamics.mark_source_weights.{sym}", dyn)
                    for sym, w in raw.items()
                }
            else:
                dyn.mark_source_weights = self.weights(raw, "dynamics.mark_source_weights", dyn)
        for key, (lo, hi) in fields.items():
            if key in body:
                setattr(dyn, key, self.number(body[key], f"dynamics.{key}", lo=lo, hi=hi))
        if "mark_sources_s" not in body:
            notes.append("the mark takes up the traded price once a second (mark_sources_s)")
        if len(dyn.mark_sources_s) > 1 and not dyn.mark_source_weights:
            unweighted = sorted(set(symbols) - set(dyn.symbol_weights))
            if unweighted:
                which = "" if len(unweighted) == len(symbols) else f" ({', '.join(unweighted)})"
                notes.append(f"the index's sources weigh the same{which} (mark_source_weights)")
        if "engine_step_s" not in body:
            notes.append(
                "the exchange updates its mark and checks liquidations continuously (engine_step_s)"
            )
        if "impact_permanent" not in body:
            notes.append(
                f"{dyn.impact_permanent:.0%} of a sweep's price move stays; the book refills "
                f"with a {dyn.book_half_life_s:g} s half-life"
            )
        if dyn.insurance_fund is None:
            notes.append("insurance fund: unknown, so ADL risk is judged from bankruptcy losses")
        return dyn


def _num(value: Any) -> Any:
    """Exchanges send prices as strings ("60000.1"): accept those too."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
