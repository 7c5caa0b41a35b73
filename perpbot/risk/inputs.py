"""What a pre-trade check sees (``CheckInput``) and says (``Rejection``), plus the small
formatting helpers every check uses so that sentences read the same way everywhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from perpbot.client.account import OpenOrder
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

    @property
    def price(self) -> float | None:
        """The price the order's notional is valued at: its limit, else the reference."""
        s = self.spec
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


def scopes(cfg: RiskSection, symbol: str) -> Iterator[tuple[RiskLimits, str, str]]:
    """(limits, config key prefix, scope word): the symbol's own table first, then the bot's."""
    own = cfg.symbols.get(symbol)
    if own is not None:
        yield own, f'[risk.symbols."{symbol}"]', f"on {symbol}"
    yield cfg, "[risk]", "for the bot"


def num(x: float) -> str:
    """A number for a sentence: no exponent, no trailing zeros."""
    text = f"{x:,.8f}".rstrip("0").rstrip(".")
    return text if text not in ("", "-0") else "0"


def usd(x: float) -> str:
    return f"{x:,.2f} USDT"


def describe(s: OrderSpec) -> str:
    at = f" @ {num(s.price)}" if s.price else ""
    flags = (" reduce-only" if s.reduce_only else "") + (" post-only" if s.post_only else "")
    return f"{s.type}{flags} {s.side} {num(s.amount)} {s.symbol}{at}"


def exposure(position: float, orders: Sequence[OpenOrder], symbol: str, extra: float) -> float:
    """Worst-case |position| if every opening order on the symbol filled (plus ``extra``)."""
    buys = sells = 0.0
    for o in orders:
        if o.symbol == symbol and not o.reduce_only:
            if o.side == "buy":
                buys += o.remaining
            else:
                sells += o.remaining
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
