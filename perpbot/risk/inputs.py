"""What a pre-trade check sees (``CheckInput``) and says (``Rejection``), plus the small
formatting helpers every check uses so that sentences read the same way everywhere."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from perpbot.client.account import OpenOrder
from perpbot.client.position_side import HEDGE_SIDES, leg, leg_key
from perpbot.client.request import OrderSpec
from perpbot.config import RiskLimits, RiskSection
from perpbot.risk.margin import AccountMargin, Brackets


@dataclass(frozen=True, slots=True)
class Rejection:
    check: str
    code: str
    sentence: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RateCounts:
    """Orders and cancels sent within ``[risk] rate_window_s``, for the symbol and the bot."""

    orders_symbol: int = 0
    orders_bot: int = 0
    cancels_symbol: int = 0
    cancels_bot: int = 0


@dataclass(slots=True)
class MarginInput:
    account: AccountMargin
    mark: float
    leverage: float
    brackets: Brackets
    bids: Sequence[Sequence[float]] | None = None  # a recent book, best first: a long
    asks: Sequence[Sequence[float]] | None = None  # closes into the bids, a short the asks


@dataclass(slots=True)
class CheckInput:
    spec: OrderSpec
    now: float
    position: float = 0.0  # signed, the order's symbol
    positions: Mapping[str, float] = field(default_factory=dict)  # every symbol (bot level)
    legs: Mapping[str, float] = field(default_factory=dict)  # hedge mode: AccountView.legs
    prices: Mapping[str, float] = field(default_factory=dict)  # reference price per symbol
    index: float | None = None  # the healthy index price of the order's symbol
    index_note: str | None = None  # why there is no index price, when there is none
    orders: Sequence[OpenOrder] = ()  # the bot's open and in-flight orders, every symbol
    reduce_only_room: float = 0.0  # see AccountView.reduce_only_room
    reduce_only_unsettled: float = 0.0  # AccountView.reduce_only_debit of the symbol
    equity: float | None = None
    rates: RateCounts = field(default_factory=RateCounts)
    reduce_only_reason: str | None = None  # set while the bot is held reduce-only
    margin: MarginInput | None = None
    contract_size: float = 1.0
    # a priceMatch order: the price it is valued at (perpbot.client.price_match.valuation;
    # None: not known) and whether that is the matched level of a fresh book
    match_price: float | None = None
    match_from_book: bool = False
    _opening: dict[str, list[float]] | None = None  # symbol -> [buys, sells], built once
    memo: dict[Any, Any] = field(default_factory=dict)  # figures several checks share

    def opening(self, symbol: str) -> list[float]:
        """Remaining size of the open orders that would grow a position: [buys, sells]
        (in hedge mode: the buys grow the LONG side, the sells the SHORT one)."""
        if self._opening is None:
            table: dict[str, list[float]] = {}
            for o in self.orders:
                if not o.closes:
                    row = table.setdefault(o.symbol, [0.0, 0.0])
                    row[0 if o.side == "buy" else 1] += o.remaining
            self._opening = table
        return self._opening.get(symbol) or [0.0, 0.0]

    def symbols(self) -> set[str]:
        """Every symbol the bot holds or has orders on, and the order's."""
        found = self.memo.get("symbols")
        if found is None:
            self.opening(self.spec.symbol)
            assert self._opening is not None
            legs = {k.split("|")[0] for k in self.legs}
            found = self.memo["symbols"] = {
                *self.positions,
                *legs,
                *self._opening,
                self.spec.symbol,
            }
        return found  # type: ignore[no-any-return]

    @property
    def price(self) -> float | None:
        """The price the order's notional is valued at: its limit, else the reference; a
        priceMatch order's: the book's matched level, else the band edge (``match_price``)."""
        s = self.spec
        if s.price_match:
            return self.match_price
        if s.price:
            return float(s.price)
        return self.prices.get(s.symbol) or s.decided_price

    @property
    def signed(self) -> float:
        return self.spec.amount if self.spec.side == "buy" else -self.spec.amount


Check = Callable[[CheckInput, RiskSection], Rejection | None]


@dataclass(frozen=True, slots=True)
class CheckRow:
    name: str
    fn: Check
    reducing: bool  # also applies to reduce-only orders


Scope = tuple[RiskLimits, str, str]
_SCOPES: dict[tuple[int, str], tuple[RiskSection, list[Scope]]] = {}


def scopes(cfg: RiskSection, symbol: str) -> list[Scope]:
    """(limits, config key prefix, scope word): the symbol's own table first, then the bot's.

    Cached per (config, symbol): every check asks, for every order.
    """
    hit = _SCOPES.get((id(cfg), symbol))
    if hit is not None and hit[0] is cfg:
        return hit[1]
    found: list[Scope] = []
    own = cfg.symbols.get(symbol)
    if own is not None:
        found.append((own, f'[risk.symbols."{symbol}"]', f"on {symbol}"))
    found.append((cfg, "[risk]", "for the bot"))
    if len(_SCOPES) > 1024:
        _SCOPES.clear()
    _SCOPES[(id(cfg), symbol)] = (cfg, found)
    return found


def num(x: float) -> str:
    """A number for a sentence: no exponent, no trailing zeros."""
    text = f"{x:,.8f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def usd(x: float) -> str:
    return f"{x:,.2f} USDT"


def describe(s: OrderSpec) -> str:
    at = f" @ {num(s.price)}" if s.price else ""
    if s.price_match:
        at = f" priceMatch {s.price_match}"
    flags = (" reduce-only" if s.reduce_only else "") + (" post-only" if s.post_only else "")
    return f"{s.type}{flags} {s.side} {num(s.amount)} {s.symbol}{at}"


def exposure(i: CheckInput, symbol: str, extra: float) -> float:
    """Worst-case |position| on ``symbol`` if every opening order filled (plus ``extra``).

    Hedge mode counts both sides: |LONG| + |SHORT|, each grown by its opening orders (a
    closing order, ``extra`` of a closing spec included, grows neither)."""
    long_, short = (i.legs.get(leg_key(symbol, s), 0.0) for s in HEDGE_SIDES)
    if long_ or short or leg(i.spec.position_side) is not None:
        buys, sells = i.opening(symbol)
        grows = symbol == i.spec.symbol and not i.spec.closes
        return (
            abs(long_)
            + buys
            + max(extra, 0.0) * grows
            + abs(short)
            + sells
            + max(-extra, 0.0) * grows
        )
    position = i.position if symbol == i.spec.symbol else i.positions.get(symbol, 0.0)
    buys, sells = i.opening(symbol)
    longest = position + buys + max(extra, 0.0)
    shortest = position - sells + min(extra, 0.0)
    return max(abs(longest), abs(shortest))


def no_price(i: CheckInput, key: str) -> Rejection:
    return Rejection(
        "price",
        "RISK_NO_PRICE",
        f"no reference price for {i.spec.symbol} yet, so {key} cannot be checked: "
        f"refused {describe(i.spec)}",
        {"symbol": i.spec.symbol, "limit": key},
    )
