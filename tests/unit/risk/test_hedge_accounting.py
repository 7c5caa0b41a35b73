"""Hedge mode in the pure parts: each side's reduce-only room, exposure counting both sides,
and what the kill gate and the rate limiter treat as risk-reducing (a SELL LONG, a BUY
SHORT). The integration tests (tests/integration/test_hedge_mode*.py) run the same over HTTP."""

from __future__ import annotations

from typing import Any

import pytest

from perpbot.client.account import AccountView
from perpbot.client.request import OrderSpec, Request
from perpbot.config import RiskSection
from perpbot.kill.describe import describe_positions_left
from perpbot.kill.gate import allowed
from perpbot.risk.exposure import check_leverage, check_position_notional
from perpbot.risk.inputs import CheckInput
from perpbot.risk.margin import after_fill
from tests.unit.risk.test_risk_gate import gate_for, make_setup

SYM = "BTC/USDT:USDT"


def rows(long_: float, short: float) -> list[dict[str, Any]]:
    """ccxt positions of a hedge-mode account: one row per side (Binance positionRisk)."""
    return [
        {"symbol": SYM, "info": {"positionAmt": str(long_), "positionSide": "LONG"}},
        {"symbol": SYM, "info": {"positionAmt": str(short), "positionSide": "SHORT"}},
    ]


def close(cid: str, side: str, position_side: str, amount: float) -> dict[str, Any]:
    return {
        "id": f"id-{cid}", "clientOrderId": cid, "symbol": SYM, "side": side,
        "type": "limit", "amount": amount, "remaining": amount, "filled": 0.0,
        "price": 100.0, "status": "open", "reduceOnly": False,
        "info": {"positionSide": position_side},
    }  # fmt: skip


def test_the_rows_say_the_mode_and_each_side_is_kept() -> None:
    view = AccountView()
    view.set_positions(rows(3.0, -3.0))
    assert view.hedged is True
    assert view.position(SYM, "LONG") == 3.0 and view.position(SYM, "SHORT") == -3.0
    assert view.position(SYM) == 0.0  # the net of two equal sides
    assert view.held_symbols() == [SYM]  # ... which both still need closing
    view.set_positions([{"symbol": SYM, "info": {"positionAmt": "2", "positionSide": "BOTH"}}])
    assert view.hedged is False and view.legs == {}


def test_each_side_has_its_own_reduce_only_room() -> None:
    view = AccountView()
    view.set_positions(rows(5.0, -2.0))
    assert view.reduce_only_room(SYM, "sell", position_side="LONG") == 5.0
    assert view.reduce_only_room(SYM, "buy", position_side="SHORT") == 2.0
    assert view.reduce_only_room(SYM, "buy", position_side="LONG") == 0.0  # an open
    assert view.reduce_only_room(SYM, "sell", position_side="SHORT") == 0.0  # an open
    view.order_placed(close("a", "sell", "LONG", 4.0))  # a resting close of the long
    view.order_placed(close("b", "sell", "SHORT", 9.0))  # an open of the short: no room used
    assert view.reduce_only_room(SYM, "sell", position_side="LONG") == 1.0
    assert view.reduce_only_room(SYM, "buy", position_side="SHORT") == 2.0
    # it vanished from the list: it may have filled, so the long's room stays debited
    view.set_orders(SYM, [close("b", "sell", "SHORT", 9.0)], fetched_at=view.updated_at + 1)
    assert view.reduce_only_room(SYM, "sell", position_side="LONG") == 1.0
    assert view.reduce_only_debit == {f"{SYM}|LONG": 4.0}


def _input(spec: OrderSpec, view: AccountView, equity: float = 1e9) -> CheckInput:
    return CheckInput(
        spec=spec, now=0.0, position=view.position(SYM, spec.position_side),
        positions=view.positions, legs=view.legs, prices={SYM: 100.0},
        orders=list(view.orders.values()), equity=equity,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "refused"),
    [
        # net +4 -> 0, but the gross goes 6 -> 10: refused (one-way arithmetic would pass)
        (OrderSpec(SYM, "sell", "market", 4.0, position_side="SHORT"), True),
        (OrderSpec(SYM, "buy", "market", 4.0, position_side="LONG"), True),
        (OrderSpec(SYM, "buy", "market", 2.0, position_side="LONG"), False),  # gross 8
        (OrderSpec(SYM, "sell", "market", 5.0, position_side="LONG"), False),  # a close
    ],
)
def test_exposure_counts_both_sides(spec: OrderSpec, refused: bool) -> None:
    view = AccountView()
    view.set_positions(rows(5.0, -1.0))  # gross 6 x 100 = 600
    cap = RiskSection(max_position_notional=800.0, max_leverage=8.0)
    assert (check_position_notional(_input(spec, view), cap) is not None) == refused
    assert (check_leverage(_input(spec, view, equity=100.0), cap) is not None) == refused


def test_a_resting_open_on_either_side_counts() -> None:
    view = AccountView()
    view.set_positions(rows(5.0, -1.0))
    view.order_placed(close("s", "sell", "SHORT", 2.0))  # an open of the short: gross 8
    spec = OrderSpec(SYM, "buy", "market", 1.0, position_side="LONG")
    cap = RiskSection(max_position_notional=850.0)
    assert check_position_notional(_input(spec, view), cap) is not None


@pytest.mark.parametrize(
    ("side", "position_side", "reducing"),
    [("sell", "LONG", True), ("buy", "SHORT", True), ("buy", "LONG", False),
     ("sell", "SHORT", False)],
)  # fmt: skip
def test_a_hedge_close_reduces_risk_and_passes_a_flatten_switch(
    side: str, position_side: str, reducing: bool
) -> None:
    spec = OrderSpec(SYM, side, "market", 1.0, position_side=position_side)  # type: ignore[arg-type]
    request = Request.for_order(spec)
    assert request.risk_reducing is reducing  # the rate limiter's reserve
    assert allowed("flatten", request) is reducing
    assert allowed("halt", request) is False
    args = (SYM, "market", side, 1.0, None)  # a raw call, params as GuardedClient.call sends
    raw = Request("create_order", args, {"params": {"positionSide": position_side}})
    assert allowed("flatten", raw) is reducing


def test_a_side_left_open_is_named_with_its_side() -> None:
    left = {f"{SYM}|LONG": 0.01, f"{SYM}|SHORT": None, "ETH/USDT:USDT": -0.5}
    assert describe_positions_left(left) == (
        "positions left open: BTC/USDT:USDT LONG +0.01, BTC/USDT:USDT SHORT unknown, "
        "ETH/USDT:USDT -0.5"
    )


def test_a_hedge_symbols_sides_share_one_liquidation_price() -> None:
    """LONG 2 and SHORT 1 at 100 on 50 equity (flat mmr 0.005): the account's margin
    balance 50 + 2 (P - 100) - (P - 100) meets the maintenance 0.005 * 3 P at
    P = 50 / 0.985, for both sides; a fall liquidates (the net is long)."""
    setup = make_setup()
    gate, _ = gate_for(setup)
    setup.account.equity = 50.0
    setup.account.set_positions(rows(2.0, -1.0))
    gate.state.marks = lambda: {SYM: 100.0}  # type: ignore[method-assign]
    snap = gate.margin_snapshot(SYM, {SYM: 100.0}, 0.0)
    assert snap is not None
    held = {k: h.amount for k, h in snap.account.holdings.items()}
    assert held == {f"{SYM}|LONG": 2.0, f"{SYM}|SHORT": -1.0}
    for side in ("LONG", "SHORT"):
        est = after_fill(
            snap.account, f"{SYM}|{side}", 0.0, 100.0,
            mark=100.0, leverage=snap.leverage, brackets=snap.brackets,
        )  # fmt: skip
        assert est.liquidation_price == pytest.approx(50.0 / 0.985)
        assert est.distance == pytest.approx((100.0 - 50.0 / 0.985) / 100.0)
    setup.account.set_positions(
        [{"symbol": SYM, "info": {"positionAmt": "1", "positionSide": "BOTH"}}]
    )
    one_way = gate.margin_snapshot(SYM, {SYM: 100.0}, 0.0)
    assert one_way is not None and list(one_way.account.holdings) == [SYM]
