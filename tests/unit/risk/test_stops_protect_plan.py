"""The arithmetic of [protect] and the judgement of conditional orders (no I/O)."""

from __future__ import annotations

import pytest

from perpbot.config import ProtectSection, RiskSection
from perpbot.engine.state import PositionSnapshot
from perpbot.protect.plan import plan
from perpbot.risk.stops import StopView, judge_at_trigger, judge_placement

BTC = "BTC/USDT:USDT"


def pos(amount: float, entry: float = 100.0, liq: float | None = None) -> PositionSnapshot:
    return PositionSnapshot(
        symbol=BTC, amount=amount, entry_price=entry, liquidation_price=liq, mark_price=entry
    )


def test_the_stop_is_the_nearer_of_entry_distance_and_liquidation_margin() -> None:
    cfg = ProtectSection(enabled=True, stop_pct=5, liquidation_margin_pct=2, take_profit_pct=10)
    long = plan(pos(1.0, liq=97.0), cfg)
    assert long is not None and long.side == "sell"
    assert long.stop == pytest.approx(98.94)  # 97 * 1.02 is nearer than 100 * 0.95
    assert long.take_profit == pytest.approx(110.0)
    short = plan(pos(-1.0, liq=150.0), cfg)
    assert short is not None and short.side == "buy"
    assert short.stop == pytest.approx(105.0)  # 150 * 0.98 = 147 is farther
    assert short.take_profit == pytest.approx(90.0)
    assert plan(pos(0.0), cfg) is None
    liq_only = ProtectSection(enabled=True, liquidation_margin_pct=2)
    assert plan(pos(1.0, liq=None), liq_only) is None  # nothing to measure from


def view(side: str, kind: str, trigger: float, amount: float | None = 1.0, reduce: bool = True):
    return StopView(symbol=BTC, side=side, kind=kind, amount=amount, trigger_price=trigger,
                    reduces_only=reduce)  # fmt: skip


def test_placement_refuses_a_stop_that_would_fire_at_once_or_sits_on_the_wrong_side() -> None:
    long = pos(1.0)
    assert judge_placement(view("sell", "stop_market", 101.0), long, 100.0, None)[0] == (  # type: ignore[index]
        "STOP_WOULD_TRIGGER_NOW"
    )
    assert judge_placement(view("sell", "take_profit_market", 99.0), long, 100.0, None) is not None
    assert judge_placement(view("sell", "stop_market", 98.0), long, 100.0, None) is None
    assert judge_placement(view("sell", "take_profit_market", 103.0), long, 100.0, None) is None
    wrong = judge_placement(view("buy", "stop_market", 103.0), long, 100.0, None)
    assert wrong is not None and wrong[0] == "STOP_WRONG_SIDE"


def test_opening_stops_keep_the_notional_limits_when_placed_and_at_trigger() -> None:
    risk = RiskSection(max_order_notional=500.0, max_position_notional=1000.0)
    flat = pos(0.0)
    big = view("buy", "stop_market", 110.0, amount=5.0, reduce=False)
    refused = judge_placement(big, flat, 100.0, risk)
    assert refused is not None and refused[0] == "STOP_RISK_ORDER_NOTIONAL"
    ok = view("buy", "stop_market", 110.0, amount=4.0, reduce=False)
    assert judge_placement(ok, flat, 100.0, risk) is None
    assert judge_at_trigger(ok, flat, 100.0, risk) is None
    grown = pos(6.0)  # 4 more at 110 would make 1100 > 1000
    at = judge_at_trigger(ok, grown, 100.0, risk)
    assert at is not None and at[0] == "STOP_REFUSED_AT_TRIGGER" and "1,100.00" in at[1]
    # a reduce-only stop is never refused at trigger, whatever the limits
    assert judge_at_trigger(view("sell", "stop_market", 90.0, 50.0), grown, 100.0, risk) is None
