"""Margin maths: brackets, fills, liquidation price (checked against the simulator's own
margin engine as an independent oracle), margin after a fill, depth allowance."""

from __future__ import annotations

import math
from typing import Any

import pytest

from perpbot.risk.margin import (
    AccountMargin,
    Brackets,
    Holding,
    after_fill,
    apply_fill,
    backing_margin,
    close_slippage,
    liquidation_price,
)
from perpbot.sim import margin as sim_margin
from perpbot.sim.config import SimConfig
from perpbot.sim.models import Account, SimPosition
from perpbot.sim.spec import SymbolSpec

# The same rows Binance publishes for BTCUSDT, in the shape ccxt fetch_leverage_tiers gives.
TIERS = [
    {
        "tier": b,
        "minNotional": floor,
        "maxNotional": cap,
        "maintenanceMarginRate": mmr,
        "maxLeverage": lev,
        "info": {"cum": str(cum)},
    }
    for b, lev, floor, cap, mmr, cum in sim_margin.BRACKETS
]
BINANCE = Brackets.from_tiers(TIERS)


@pytest.mark.parametrize(
    ("notional", "mmr", "maint"),
    [
        (10_000, 0.004, 40.0),
        (49_999, 0.004, 199.996),
        (50_000, 0.005, 200.0),  # 50 000 * 0.005 - 50
        (1_000_000, 0.0065, 5550.0),
        (-1_000_000, 0.0065, 5550.0),  # a short's notional is judged by its size
    ],
)
def test_brackets(notional: float, mmr: float, maint: float) -> None:
    assert BINANCE.bracket(notional).mmr == mmr
    assert BINANCE.maint_margin(notional) == pytest.approx(maint)
    assert BINANCE.maint_margin(notional) == pytest.approx(sim_margin.maint_margin(abs(notional)))


def test_brackets_need_tiers_and_sort_them() -> None:
    with pytest.raises(ValueError):
        Brackets.from_tiers([])
    shuffled = Brackets.from_tiers(list(reversed(TIERS)))
    assert [r.floor for r in shuffled.rows] == sorted(r.floor for r in shuffled.rows)
    assert Brackets.flat(0.01).source == "flat" and BINANCE.source == "exchange"


@pytest.mark.parametrize(
    ("amount", "entry", "delta", "price", "expected"),
    [
        (0.0, 0.0, 1.0, 100.0, (1.0, 100.0)),  # open
        (1.0, 100.0, 1.0, 110.0, (2.0, 105.0)),  # add: average in
        (2.0, 100.0, -0.5, 120.0, (1.5, 100.0)),  # reduce: entry unchanged
        (1.0, 100.0, -1.0, 90.0, (0.0, 0.0)),  # close
        (1.0, 100.0, -3.0, 90.0, (-2.0, 90.0)),  # flip: remainder at the fill
        (-1.0, 100.0, -1.0, 80.0, (-2.0, 90.0)),  # add to a short
    ],
)
def test_apply_fill(
    amount: float, entry: float, delta: float, price: float, expected: tuple[float, float]
) -> None:
    got = apply_fill(amount, entry, delta, price)
    assert got == pytest.approx(expected)


def _sim_liq(wallet: float, positions: dict[str, tuple[float, float]], marks: dict[str, float]):
    """The simulator's liquidation prices for cross positions {symbol: (amount, entry)}."""
    cfg = SimConfig()
    specs = {s.symbol: SymbolSpec(s) for s in cfg.symbols}
    acct = Account("k", "s", {}, 0, wallet)
    for sym, (amount, entry) in positions.items():
        acct.positions[sym] = SimPosition(sym, round(amount / specs[sym].step_f), entry)
    view = sim_margin.summarize(acct, specs, marks, [], 20)
    return {pv.spec.symbol: pv.liq_price for pv in view.positions}


@pytest.mark.parametrize(
    ("wallet", "positions", "marks"),
    [
        (1000.0, {"BTCUSDT": (0.2, 60000.0)}, {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0}),
        (1000.0, {"BTCUSDT": (-0.2, 60000.0)}, {"BTCUSDT": 61000.0, "ETHUSDT": 3000.0}),
        (5000.0, {"BTCUSDT": (1.5, 58000.0)}, {"BTCUSDT": 60000.0, "ETHUSDT": 3000.0}),
        (
            3000.0,
            {"BTCUSDT": (0.3, 60000.0), "ETHUSDT": (-4.0, 3100.0)},
            {"BTCUSDT": 59500.0, "ETHUSDT": 3050.0},
        ),
    ],
)
def test_liquidation_price_matches_the_simulator(
    wallet: float, positions: dict[str, tuple[float, float]], marks: dict[str, float]
) -> None:
    expected = _sim_liq(wallet, positions, marks)
    holdings = {
        s: Holding(amount, entry, marks[s], 20.0, BINANCE)
        for s, (amount, entry) in positions.items()
    }
    upnl = sum(h.upnl for h in holdings.values())
    acct = AccountMargin(wallet + upnl, holdings)
    for sym, h in holdings.items():
        ours = liquidation_price(h, backing_margin(acct, sym))
        assert ours == pytest.approx(expected[sym], rel=1e-9), sym


def test_a_fully_backed_long_cannot_be_liquidated() -> None:
    h = Holding(0.01, 60000.0, 60000.0, 1.0, BINANCE)
    assert liquidation_price(h, 10_000.0) is None
    assert liquidation_price(Holding(0.0, 0.0, 1.0, 1.0, BINANCE), 10.0) is None


def test_isolated_margin_backs_only_its_position() -> None:
    iso = Holding(0.1, 60000.0, 60000.0, 10.0, BINANCE, isolated_wallet=600.0)
    cross = Holding(-1.0, 3000.0, 3000.0, 10.0, BINANCE)
    acct = AccountMargin(10_000.0, {"BTC": iso, "ETH": cross})
    assert backing_margin(acct, "BTC") == 600.0
    # (0.1 * 60000 - 600) / (0.1 - 0.1 * 0.004)
    assert liquidation_price(iso, 600.0) == pytest.approx(5400 / 0.0996)


CASES_AFTER: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    (
        "opening from flat",
        {"equity": 1000.0, "delta": 0.2, "price": 60000.0},
        {"amount": 0.2, "available": 400.0, "liq": 11000 / 0.1992},
    ),
    (
        "closing frees the margin and realises the PnL",
        {"equity": 1100.0, "start": (0.1, 59000.0), "delta": -0.1, "price": 60000.0},
        {"amount": 0.0, "available": 1100.0, "liq": None},
    ),
    (
        "a short's liquidation is above the mark",
        {"equity": 1000.0, "delta": -0.2, "price": 60000.0},
        {"amount": -0.2, "available": 400.0, "liq": (-12000 - 1000) / (-0.2 - 0.0008)},
    ),
]


@pytest.mark.parametrize(
    ("name", "given", "expected"), CASES_AFTER, ids=[c[0] for c in CASES_AFTER]
)
def test_after_fill(name: str, given: dict[str, Any], expected: dict[str, Any]) -> None:
    holdings = {}
    if "start" in given:
        amount, entry = given["start"]
        holdings["BTC"] = Holding(amount, entry, 60000.0, 20.0, BINANCE)
    acct = AccountMargin(given["equity"], holdings)
    est = after_fill(
        acct, "BTC", given["delta"], given["price"], mark=60000.0, leverage=20.0, brackets=BINANCE
    )
    assert est.amount == pytest.approx(expected["amount"])
    assert est.available == pytest.approx(expected["available"])
    if expected["liq"] is None:
        assert est.liquidation_price is None and est.distance is None
    else:
        assert est.liquidation_price == pytest.approx(expected["liq"])
        side = 1 if est.amount > 0 else -1
        assert est.distance == pytest.approx(side * (60000.0 - expected["liq"]) / 60000.0)


@pytest.mark.parametrize(
    ("levels", "qty", "expected"),
    [
        ([[99.0, 1.0], [98.0, 1.0]], 0.5, 0.01),
        ([[99.0, 1.0], [98.0, 1.0]], 1.5, 0.02),
        ([[99.0, 1.0], [98.0, 1.0]], 5.0, 0.02),  # not absorbed: at least the last level
        ([], 1.0, 0.0),
        ([[99.0, 1.0]], 0.0, 0.0),
    ],
)
def test_close_slippage(levels: list[list[float]], qty: float, expected: float) -> None:
    assert close_slippage(levels, qty, 100.0) == pytest.approx(expected)
    assert not math.isnan(close_slippage(levels, qty, 100.0))
