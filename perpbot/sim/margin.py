"""Margin math for one-way USD-M accounts: brackets, position views, account totals.

Deliberately computed on demand from the account's positions and the current marks,
never cached, so every payload (account, positionRisk, the state dump) and every check
(order margin, liquidation) agrees on the same numbers at the same instant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from perpbot.sim.models import Account, Order, SimPosition
from perpbot.sim.spec import SymbolSpec

# (bracket, initialLeverage, notionalFloor, notionalCap, maintMarginRatio, cum)
BRACKETS: tuple[tuple[int, int, float, float, float, float], ...] = (
    (1, 125, 0.0, 50_000.0, 0.004, 0.0),
    (2, 100, 50_000.0, 600_000.0, 0.005, 50.0),
    (3, 75, 600_000.0, 3_000_000.0, 0.0065, 950.0),
    (4, 50, 3_000_000.0, 12_000_000.0, 0.01, 11_450.0),
    (5, 25, 12_000_000.0, 50_000_000.0, 0.02, 131_450.0),
    (6, 10, 50_000_000.0, 100_000_000.0, 0.05, 1_631_450.0),
    (7, 5, 100_000_000.0, 200_000_000.0, 0.1, 6_631_450.0),
    (8, 1, 200_000_000.0, 500_000_000.0, 0.25, 36_631_450.0),
)


def bracket_for(notional: float) -> tuple[int, int, float, float, float, float]:
    for row in BRACKETS:
        if notional < row[3]:
            return row
    return BRACKETS[-1]


def maint_margin(notional: float) -> float:
    _, _, _, _, ratio, cum = bracket_for(notional)
    return max(0.0, notional * ratio - cum)


def max_notional_for_leverage(leverage: int) -> float:
    """Binance's maxNotionalValue: the cap of the largest bracket allowing ``leverage``."""
    best = BRACKETS[0][3]
    for row in BRACKETS:
        if row[1] >= leverage:
            best = row[3]
    return best


@dataclass(slots=True)
class PositionView:
    pos: SimPosition
    spec: SymbolSpec
    amt: float
    mark: float
    notional: float
    upnl: float
    im: float
    mm: float
    leverage: int
    isolated: bool
    liq_price: float = 0.0


@dataclass(slots=True)
class MarginView:
    wallet: float
    cross_wallet: float
    upnl: float
    cross_upnl: float
    pos_im: float
    order_im: float
    maint: float
    cross_maint: float
    available: float
    positions: list[PositionView]

    @property
    def margin_balance(self) -> float:
        return self.wallet + self.upnl


def leverage_of(acct: Account, symbol: str, default: int) -> int:
    return acct.leverage.get(symbol, default)


def is_isolated(acct: Account, symbol: str) -> bool:
    return acct.margin_type.get(symbol, "CROSSED") == "ISOLATED"


def summarize(
    acct: Account,
    specs: Mapping[str, SymbolSpec],
    marks: Mapping[str, float],
    open_orders: Iterable[Order],
    default_leverage: int,
) -> MarginView:
    views: list[PositionView] = []
    upnl = cross_upnl = pos_im = maint = cross_maint = isolated_wallets = 0.0
    for pos in acct.positions.values():
        if pos.amt == 0:
            continue
        symbol = pos.symbol
        spec = specs[symbol]
        amt = pos.amt * spec.step_f
        mark = marks[symbol]
        notional = amt * mark
        pnl = amt * (mark - pos.entry)
        lev = leverage_of(acct, symbol, default_leverage)
        iso = is_isolated(acct, symbol)
        mm = maint_margin(abs(notional))
        view = PositionView(pos, spec, amt, mark, notional, pnl, abs(notional) / lev, mm, lev, iso)
        views.append(view)
        upnl += pnl
        pos_im += view.im
        maint += mm
        if iso:
            isolated_wallets += pos.isolated_wallet
        else:
            cross_upnl += pnl
            cross_maint += mm
    order_im = 0.0
    for order in open_orders:
        spec = specs[order.symbol]
        lev = leverage_of(acct, order.symbol, default_leverage)
        if not order.closing:
            order_im += order.remaining * spec.step_f * spec.px(order.price) / lev
    cross_wallet = acct.wallet - isolated_wallets
    cross_im = sum(v.im for v in views if not v.isolated)
    available = max(0.0, cross_wallet + cross_upnl - cross_im - order_im)
    view = MarginView(
        acct.wallet,
        cross_wallet,
        upnl,
        cross_upnl,
        pos_im,
        order_im,
        maint,
        cross_maint,
        available,
        views,
    )
    for pv in views:
        pv.liq_price = _liquidation_price(pv, view)
    return view


def _liquidation_price(pv: PositionView, acct: MarginView) -> float:
    """Mark at which this position's margin would fall to its maintenance margin.

    Solves ``margin + amt * (P - entry) = |amt| * P * mmr - cum`` with the other cross
    positions held at their current marks (Binance's single-position formula).
    """
    _, _, _, _, ratio, cum = bracket_for(abs(pv.notional))
    if pv.isolated:
        margin = pv.pos.isolated_wallet
    else:
        margin = acct.cross_wallet + (acct.cross_upnl - pv.upnl) - (acct.cross_maint - pv.mm)
    denom = pv.amt - abs(pv.amt) * ratio
    if denom == 0:
        return 0.0
    price = (pv.amt * pv.pos.entry - margin - cum) / denom
    return max(0.0, price)
