"""Margin after a fill and the liquidation price, with the exchange's maintenance brackets.

Binance USD-M (one-way mode) charges maintenance margin by notional bracket:
``maint = notional * maintMarginRatio - cum``. A cross position is liquidated when the
account's margin balance falls to the maintenance margin, the mark price being the
trigger; the single-position formula solved for the mark is

    LP = (amt * entry - M - cum) / (amt - |amt| * mmr)

with ``M`` the margin backing the position: the wallet balance plus the other positions'
unrealised PnL minus their maintenance margin (cross), or the isolated wallet. Brackets come
from ``leverageBracket`` (ccxt ``fetch_leverage_tiers``); until they are known a flat
``maint_margin_ratio`` is used, which the status says.

Hedge mode: holdings are keyed by ``leg_key`` (``SYMBOL|LONG``, ``SYMBOL|SHORT``). A cross
LONG and SHORT of one symbol move with the same mark and are liquidated together (the
account's margin balance falls to its maintenance margin), so they share one price, the
same formula summed over the symbol's sides (Binance's hedge-mode formula):

    LP = (sum(amt * entry) - M - sum(cum)) / (sum(amt) - sum(|amt| * mmr))

with ``M`` backed by the other symbols only. It falls when the symbol's sides together
lose as the price falls (the denominator > 0), rises otherwise.

Everything here is plain float maths on small inputs: the pre-trade pass calls it per order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from perpbot.client.position_side import leg_symbol


@dataclass(frozen=True, slots=True)
class Bracket:
    floor: float
    cap: float
    mmr: float
    cum: float
    max_leverage: float


@dataclass(frozen=True, slots=True)
class Brackets:
    """One symbol's maintenance brackets, lowest notional first."""

    rows: tuple[Bracket, ...]
    source: str = "exchange"  # "exchange" (leverageBracket) or "flat" (configured fallback)

    @classmethod
    def flat(cls, mmr: float) -> Brackets:
        return cls((Bracket(0.0, math.inf, mmr, 0.0, 125.0),), source="flat")

    @classmethod
    def from_tiers(cls, tiers: Sequence[Mapping[str, Any]]) -> Brackets:
        """From ccxt ``fetch_leverage_tiers()[symbol]`` (cum is in each tier's ``info``)."""
        rows = []
        for t in tiers:
            info = t.get("info") or {}
            rows.append(
                Bracket(
                    floor=float(t.get("minNotional") or 0.0),
                    cap=float(t.get("maxNotional") or math.inf),
                    mmr=float(t.get("maintenanceMarginRate") or 0.0),
                    cum=float(info.get("cum") or 0.0),
                    max_leverage=float(t.get("maxLeverage") or 1.0),
                )
            )
        if not rows:
            raise ValueError("no leverage tiers")
        return cls(tuple(sorted(rows, key=lambda b: b.floor)))

    def bracket(self, notional: float) -> Bracket:
        n = abs(notional)
        for row in self.rows:
            if n < row.cap:
                return row
        return self.rows[-1]

    def maint_margin(self, notional: float) -> float:
        b = self.bracket(notional)
        return max(0.0, abs(notional) * b.mmr - b.cum)


@dataclass(slots=True)
class Holding:
    """One symbol's position as the margin maths needs it."""

    amount: float  # signed
    entry: float
    mark: float
    leverage: float
    brackets: Brackets
    isolated_wallet: float | None = None  # set for an isolated position

    @property
    def notional(self) -> float:
        return self.amount * self.mark

    @property
    def upnl(self) -> float:
        return self.amount * (self.mark - self.entry)

    @property
    def initial_margin(self) -> float:
        return abs(self.notional) / self.leverage

    @property
    def maint(self) -> float:
        return self.brackets.maint_margin(self.notional)


@dataclass(slots=True)
class AccountMargin:
    """The account as of the last reconcile: equity (margin balance) and holdings."""

    equity: float
    holdings: dict[str, Holding]
    order_margin: float = 0.0  # initial margin held by open opening orders

    @property
    def wallet(self) -> float:
        return self.equity - sum(h.upnl for h in self.holdings.values())

    def available(self) -> float:
        used = sum(h.initial_margin for h in self.holdings.values() if h.isolated_wallet is None)
        iso = sum(h.isolated_wallet or 0.0 for h in self.holdings.values())
        cross_upnl = sum(h.upnl for h in self.holdings.values() if h.isolated_wallet is None)
        return self.wallet - iso + cross_upnl - used - self.order_margin


@dataclass(frozen=True, slots=True)
class MarginEstimate:
    symbol: str
    amount: float  # the position after the fill
    entry: float
    mark: float
    available: float  # margin left for new orders after the fill
    initial_margin: float  # this symbol's initial margin after the fill
    liquidation_price: float | None  # None: cannot be liquidated (flat, or fully backed)
    brackets_source: str = "exchange"
    notes: tuple[str, ...] = field(default_factory=tuple)
    # a falling mark liquidates (a long; a hedge-mode symbol whose sides lose as it falls)
    falls: bool | None = None  # None: by the sign of ``amount``

    @property
    def distance(self) -> float | None:
        """How far the mark may move against the position before liquidation (fraction)."""
        if self.liquidation_price is None or not self.amount or self.mark <= 0:
            return None
        falls = self.amount > 0 if self.falls is None else self.falls
        if falls:
            return (self.mark - self.liquidation_price) / self.mark
        return (self.liquidation_price - self.mark) / self.mark


def apply_fill(amount: float, entry: float, delta: float, price: float) -> tuple[float, float]:
    """Position and entry price after a signed fill of ``delta`` at ``price``."""
    new = amount + delta
    if abs(new) < 1e-15:
        return 0.0, 0.0
    if amount == 0 or (amount > 0) == (delta > 0):  # opening or adding: average in
        return new, (amount * entry + delta * price) / new
    if (amount > 0) == (new > 0):  # reducing: entry unchanged
        return new, entry
    return new, price  # flipped: the remainder opened at the fill price


def liquidation_price(h: Holding, backing: float, siblings: Sequence[Holding] = ()) -> float | None:
    """The mark at which ``h`` would be liquidated, given the margin ``backing`` it
    (``siblings``: the other cross side of its hedge-mode symbol, liquidated with it)."""
    return _solve(h, backing, siblings)[0]


def _solve(h: Holding, backing: float, siblings: Sequence[Holding]) -> tuple[float | None, float]:
    """(liquidation price or None, the formula's denominator: > 0 when a fall liquidates)."""
    if not h.amount:
        return None, 0.0
    top, denom = -backing, 0.0
    for x in (h, *siblings):
        b = x.brackets.bracket(x.notional)
        top += x.amount * x.entry - b.cum
        denom += x.amount - abs(x.amount) * b.mmr
    if denom == 0:
        return None, 0.0
    price = top / denom
    if price <= 0:
        return None, denom  # a long that no price can liquidate
    return price, denom


def backing_margin(acct: AccountMargin, symbol: str) -> float:
    """The margin that stands behind ``symbol``'s position (cross: shared, minus the others)."""
    h = acct.holdings[symbol]
    if h.isolated_wallet is not None:
        return h.isolated_wallet
    others = [v for k, v in acct.holdings.items() if k != symbol and v.isolated_wallet is None]
    iso = sum(v.isolated_wallet or 0.0 for v in acct.holdings.values())
    return acct.wallet - iso + sum(v.upnl for v in others) - sum(v.maint for v in others)


def after_fill(
    acct: AccountMargin,
    symbol: str,
    delta: float,
    price: float,
    *,
    mark: float,
    leverage: float,
    brackets: Brackets,
) -> MarginEstimate:
    """Margin and liquidation price of ``symbol`` if a signed ``delta`` fills at ``price``.

    One pass over the other holdings (this runs for every order): their cross PnL,
    maintenance and initial margin, and the isolated wallets, are what the new position
    shares the account with. ``symbol`` is a ``leg_key``: on a hedge-mode account the side the
    fill goes to, whose cross sibling side shares its liquidation price.
    """
    cur = acct.holdings.get(symbol)
    iso_wallet = cur.isolated_wallet if cur is not None else None
    group = leg_symbol(symbol)
    siblings: list[Holding] = []
    amount, entry = (cur.amount, cur.entry) if cur is not None else (0.0, 0.0)
    new_amount, new_entry = apply_fill(amount, entry, delta, price)
    realised = 0.0
    if amount and (amount > 0) != (delta > 0):  # realised PnL moves into the wallet (no fees)
        closed = min(abs(delta), abs(amount))
        realised = closed * (price - entry) * (1.0 if amount > 0 else -1.0)
    upnl_all = iso = o_upnl = o_maint = o_im = sib_upnl = 0.0
    for k, h in acct.holdings.items():
        u = h.amount * (h.mark - h.entry)
        upnl_all += u
        if k == symbol:
            continue
        if h.isolated_wallet is not None:
            iso += h.isolated_wallet
            continue
        o_upnl += u
        o_im += h.initial_margin
        if iso_wallet is None and leg_symbol(k) == group:
            siblings.append(h)  # moves with the same mark: in the formula, not the backing
            sib_upnl += u
        else:
            o_maint += h.maint
    wallet = acct.equity - upnl_all + realised
    shared = wallet - iso + o_upnl - o_im - acct.order_margin
    if not new_amount:
        return MarginEstimate(symbol, 0.0, 0.0, mark, shared, 0.0, None, brackets.source)
    if iso_wallet is not None:  # isolated: the added notional brings its own margin
        iso_wallet += max(0.0, abs(new_amount) - abs(amount)) * price / leverage
    h = Holding(new_amount, new_entry, mark, leverage, brackets, iso_wallet)
    if iso_wallet is None:
        available = shared + h.upnl - h.initial_margin
        backing = wallet - iso + o_upnl - sib_upnl - o_maint
    else:
        available = shared - iso_wallet
        backing = iso_wallet
    price, denom = _solve(h, backing, siblings)
    return MarginEstimate(
        symbol=symbol,
        amount=new_amount,
        entry=new_entry,
        mark=mark,
        available=available,
        initial_margin=h.initial_margin,
        liquidation_price=price,
        brackets_source=brackets.source,
        falls=denom > 0 if siblings else None,
    )


def close_slippage(levels: Sequence[Sequence[float]], qty: float, mid: float) -> float:
    """Fraction of ``mid`` between it and the worst price reached closing ``qty`` through
    the book ``levels`` ([price, size], best first). When the visible book cannot absorb
    ``qty`` the distance to its last level is returned: a lower bound, but never zero.
    """
    if qty <= 0 or mid <= 0 or not levels:
        return 0.0
    left = qty
    worst = mid
    for price, size in levels:
        worst = float(price)
        left -= float(size)
        if left <= 0:
            break
    return abs(worst - mid) / mid
