"""AccountView's reduce-only accounting, step by step (the property test explores the rest)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from perpbot.client.account import AccountView

SYM = "BTC/USDT:USDT"


def long(amount: float) -> list[dict[str, Any]]:
    return [{"symbol": SYM, "info": {"positionAmt": str(amount)}, "entryPrice": 100.0}]


def ro(cid: str, amount: float, remaining: float, status: str = "open") -> dict[str, Any]:
    return {
        "id": f"id-{cid}",
        "clientOrderId": cid,
        "symbol": SYM,
        "side": "sell",
        "type": "limit",
        "amount": amount,
        "remaining": remaining,
        "filled": amount - remaining,
        "price": 101.0,
        "status": status,
        "reduceOnly": True,
    }


@pytest.fixture
def view() -> AccountView:
    v = AccountView()
    v.set_positions(long(10))
    return v


def test_room_counts_open_and_in_flight(view: AccountView) -> None:
    view.order_placed(ro("a", 3, 3))
    view.reserve("b", SYM, "sell", 2, reduce_only=True)
    assert view.reduce_only_room(SYM, "sell") == 5
    assert view.reduce_only_room(SYM, "buy") == 0  # buying would grow a long
    assert view.reduce_only_room(SYM, "sell", exclude="a") == 8


def test_an_answer_filled_at_once_is_debited(view: AccountView) -> None:
    view.reserve("a", SYM, "sell", 4, reduce_only=True)
    view.order_placed(ro("a", 4, 1))  # 3 filled on arrival; the position read says 10
    assert view.reduce_only_room(SYM, "sell") == 10 - 3 - 1
    view.reserve("b", SYM, "sell", 2, reduce_only=True)
    view.order_placed({**ro("b", 2, 0, "closed"), "filled": None})
    assert view.reduce_only_debit[SYM] == 5


@pytest.mark.parametrize(("known", "kept"), [(True, False), (False, True)])
def test_release(view: AccountView, known: bool, kept: bool) -> None:
    view.reserve("a", SYM, "sell", 4, reduce_only=True)
    view.release("a", known=known)
    assert ("a" in view.orders) is kept


def test_set_orders_keeps_what_came_after_the_list(view: AccountView) -> None:
    view.order_placed(ro("old", 2, 2))
    fetched_at = time.time()
    time.sleep(0.001)
    view.order_placed(ro("new", 1, 1))
    view.reserve("flying", SYM, "sell", 1, reduce_only=True)
    view.set_orders(SYM, [ro("old", 2, 2)], fetched_at)
    assert set(view.orders) == {"old", "new", "flying"}


def test_set_orders_debits_fills_seen_after_the_position_read(view: AccountView) -> None:
    view.order_placed(ro("a", 4, 4))
    view.order_placed(ro("b", 3, 3))
    view.set_positions(long(10))
    view.set_orders(SYM, [ro("a", 4, 1)], time.time())  # a filled 3, b vanished (filled?)
    assert view.reduce_only_debit[SYM] == 3 + 3
    assert view.reduce_only_room(SYM, "sell") == 10 - 6 - 1
    view.set_positions(long(4))  # the next read has the fills: the debit is settled
    assert view.reduce_only_room(SYM, "sell") == 4 - 1


def test_cancels_known_and_unknown(view: AccountView) -> None:
    view.order_placed(ro("a", 4, 4))
    view.order_placed(ro("b", 4, 4))
    view.order_closed(ro("a", 4, 1, "canceled"))  # the answer says 3 had filled
    view.order_gone("b")  # not found: maybe filled
    assert "a" not in view.orders and "b" not in view.orders
    assert view.reduce_only_debit[SYM] == 3 + 4
    view.order_placed(ro("c", 2, 2))
    view.symbol_cleared(SYM)
    assert view.reduce_only_debit[SYM] == 9
    assert view.reduce_only_room(SYM, "sell") == 1


def test_non_reduce_only_orders_never_debit(view: AccountView) -> None:
    view.order_placed({**ro("g", 2, 2), "reduceOnly": False, "side": "buy"})
    view.order_gone("g")
    assert not view.reduce_only_debit
