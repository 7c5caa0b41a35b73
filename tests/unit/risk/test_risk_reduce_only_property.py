"""Property: no sequence of partial fills, cancels and reconciles lets the bot's reduce-only
orders exceed the position.

The exchange (the truth) holds a long position and the reduce-only sell orders the bot got
accepted; it fills them partially at any time (the bot does not see it until a reconcile or
an answer says so), and expires them when the position is gone. The bot decides every new
reduce-only order with ``check_reduce_only`` against its AccountView, which learns only what
the real code paths tell it: reservations, late or early order answers, known and unknown
cancels, cancel-all, and reconciles whose position read happens *before* its order list (fills
can land in between, as in the runner). The exchange is modelled as accepting every order
sent while a position exists, so the bot-side check is the only guard.
"""

from __future__ import annotations

import time
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from perpbot.client.account import AccountView
from perpbot.client.request import OrderSpec
from perpbot.config import RiskSection
from perpbot.risk.inputs import CheckInput
from perpbot.risk.pretrade import check_reduce_only

SYM = "BTC/USDT:USDT"
CFG = RiskSection()


def position_row(amount: float) -> dict[str, Any]:
    return {"symbol": SYM, "info": {"positionAmt": str(amount)}, "entryPrice": 100.0}


def order_row(cid: str, amount: float, remaining: float, status: str = "open") -> dict[str, Any]:
    return {
        "id": cid.upper(),
        "clientOrderId": cid,
        "symbol": SYM,
        "side": "sell",
        "type": "limit",
        "amount": amount,
        "filled": amount - remaining,
        "remaining": remaining,
        "price": 101.0,
        "status": status,
        "reduceOnly": True,
    }


class ReduceOnlyAccounting(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.view = AccountView()
        self.position = 0  # the exchange's long position (contracts)
        self.remaining: dict[str, int] = {}  # the exchange's open reduce-only sells
        self.amount: dict[str, int] = {}
        self.pending: list[str] = []  # accepted, answer not delivered to the bot yet
        self.n = 0
        self.accepted = 0

    @initialize(start=st.integers(1, 40))
    def open_position(self, start: int) -> None:
        self.position = start
        self.view.set_positions([position_row(start)])

    # -- the exchange -----------------------------------------------------------------------
    def _fill(self, cid: str, qty: int) -> None:
        q = min(qty, self.remaining[cid], self.position)
        self.position -= q
        self.remaining[cid] -= q
        if self.remaining[cid] == 0:
            del self.remaining[cid]
        if self.position == 0:  # reduce-only orders expire with the position
            self.remaining.clear()

    @precondition(lambda self: bool(self.remaining))
    @rule(data=st.data())
    def partial_fill(self, data: st.DataObject) -> None:
        cid = data.draw(st.sampled_from(sorted(self.remaining)))
        self._fill(cid, data.draw(st.integers(1, self.remaining[cid])))

    # -- the bot ----------------------------------------------------------------------------
    @rule(qty=st.integers(1, 50), answer=st.sampled_from(["now", "later", "filled_at_once"]))
    def place(self, qty: int, answer: str) -> None:
        self.n += 1
        cid = f"ro-{self.n}"
        spec = OrderSpec(SYM, "sell", "limit", float(qty), 101.0, reduce_only=True)
        check = CheckInput(
            spec=spec,
            now=time.time(),
            position=self.view.position(SYM),
            reduce_only_room=self.view.reduce_only_room(SYM, "sell"),
        )
        if check_reduce_only(check, CFG) is not None:
            return
        self.view.reserve(cid, SYM, "sell", float(qty), reduce_only=True)
        if self.position == 0:  # the exchange refuses (-2022): certain
            self.view.release(cid, known=True)
            return
        self.accepted += 1
        self.remaining[cid] = qty
        self.amount[cid] = qty
        if answer == "later":
            self.pending.append(cid)
            return
        if answer == "filled_at_once":
            self._fill(cid, qty)
        left = self.remaining.get(cid, 0)
        status = "open" if left else "closed"
        self.view.order_placed(order_row(cid, qty, float(left), status))

    @precondition(lambda self: bool(self.pending))
    @rule(data=st.data())
    def late_answer(self, data: st.DataObject) -> None:
        cid = self.pending.pop(data.draw(st.integers(0, len(self.pending) - 1)))
        # the answer describes the order as accepted (fills after it are not in it)
        self.view.order_placed(order_row(cid, self.amount[cid], float(self.amount[cid])))

    @precondition(lambda self: bool(self.remaining))
    @rule(data=st.data(), answer_known=st.booleans())
    def cancel(self, data: st.DataObject, answer_known: bool) -> None:
        cid = data.draw(st.sampled_from(sorted(self.remaining)))
        left = self.remaining.pop(cid)
        if answer_known:
            self.view.order_closed(order_row(cid, self.amount[cid], float(left), "canceled"))
        else:
            self.view.order_gone(cid)

    @rule()
    def cancel_all(self) -> None:
        self.remaining.clear()
        self.view.symbol_cleared(SYM)

    @rule(data=st.data())
    def reconcile(self, data: st.DataObject) -> None:
        self.view.set_positions([position_row(self.position)] if self.position else [])
        for _ in range(data.draw(st.integers(0, 3))):  # fills between the two reads
            if self.remaining:
                cid = data.draw(st.sampled_from(sorted(self.remaining)))
                self._fill(cid, data.draw(st.integers(1, self.remaining[cid])))
        fetched_at = time.time()
        rows = [order_row(c, self.amount[c], float(r)) for c, r in self.remaining.items()]
        self.view.set_orders(SYM, rows, fetched_at)

    # -- the property -----------------------------------------------------------------------
    @invariant()
    def reduce_only_never_exceeds_the_position(self) -> None:
        assert self.position >= 0
        assert sum(self.remaining.values()) <= self.position, (
            f"reduce-only orders {self.remaining} exceed the position {self.position}"
        )

    @invariant()
    def the_view_is_conservative(self) -> None:
        """The room the bot believes it has never exceeds the room it really has."""
        real = self.position - sum(self.remaining.values())
        assert self.view.reduce_only_room(SYM, "sell") <= real + 1e-9


ReduceOnlyAccounting.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None, derandomize=True
)
TestReduceOnlyAccounting = ReduceOnlyAccounting.TestCase


def test_the_model_does_place_orders() -> None:
    """Guard against a vacuous property: a plain run accepts reduce-only orders."""
    m = ReduceOnlyAccounting()
    m.open_position(10)
    m.place(4, "now")
    m.place(6, "later")
    m.place(1, "now")  # refused: 10 already reserved
    assert m.accepted == 2
    m._fill("ro-1", 2)
    m.cancel_all()
    assert m.view.reduce_only_room(SYM, "sell") == 0.0  # unknown fills: no room until a read
    m.view.set_positions([position_row(m.position)])
    m.view.set_orders(SYM, [], time.time())
    assert m.view.reduce_only_room(SYM, "sell") == m.position == 8
