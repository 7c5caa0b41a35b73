"""A bot sharing its (account, symbol) counts its position and PnL from its own fills."""

from __future__ import annotations

import pytest

from perpbot.client.orders import client_order_id, is_ours, perpbot_strategy_tag, strategy_tag
from perpbot.engine.ledger import OwnPosition


def test_average_cost_partial_close_and_flip() -> None:
    p = OwnPosition()
    assert p.apply("buy", 100.0, 1.0) == 0.0
    assert p.apply("buy", 110.0, 1.0) == 0.0
    assert p.amount == 2.0 and p.entry_price == pytest.approx(105.0)
    assert p.apply("sell", 115.0, 0.5) == pytest.approx(5.0)  # (115 - 105) * 0.5
    assert p.amount == 1.5 and p.entry_price == pytest.approx(105.0)
    assert p.apply("sell", 95.0, 2.5) == pytest.approx(-15.0)  # closes 1.5 at -10, flips
    assert p.amount == pytest.approx(-1.0) and p.entry_price == pytest.approx(95.0)
    assert p.apply("buy", 90.0, 1.0) == pytest.approx(5.0)
    assert p.amount == 0.0 and p.entry_price is None and p.realized == pytest.approx(-5.0)


def test_client_ids_carry_a_stable_strategy_tag_and_a_run_tag() -> None:
    a = client_order_id("run-1", "grid", 3)
    b = client_order_id("run-2", "grid", 3)
    other = client_order_id("run-1", "trend", 3)
    assert a != b and len(a) <= 36
    assert perpbot_strategy_tag(a) == perpbot_strategy_tag(b) == strategy_tag("grid")
    assert perpbot_strategy_tag(other) == strategy_tag("trend") != strategy_tag("grid")
    assert is_ours(a, "run-1", "grid") and not is_ours(b, "run-1", "grid")
    for foreign in ("hand-1", "pbk-3fa2c1d09b7e-0", "pb-0123456789-1", None, ""):
        assert perpbot_strategy_tag(foreign) is None


def test_once_the_stop_cancels_no_create_leaves_but_reads_and_cancels_do() -> None:
    """A create still pending when the stop starts cancelling (a resend after an unknown
    outcome, a long backoff) is refused at the wire: it would land after the stop confirmed
    nothing of the run open and released the dead-man countdown."""
    from perpbot.client.account import AccountView
    from perpbot.client.request import Request
    from perpbot.engine.ledger import Ledger
    from perpbot.engine.orders import OrderManager
    from perpbot.errors import RuntimeFailure
    from perpbot.events import EventBus

    orders = OrderManager(
        client=None,  # type: ignore[arg-type]  # the wire look needs no client
        ledger=Ledger(),
        account=AccountView(),
        bus=EventBus(),
        run_id="r",
        strategy="s",
        symbols=["BTC/USDT:USDT"],
    )
    create = Request(method="create_order", args=("BTC/USDT:USDT", "limit", "buy", 0.01, 1.0))
    cancel = Request(method="cancel_order", args=("1", "BTC/USDT:USDT"))
    read = Request(method="fetch_open_orders", args=("BTC/USDT:USDT",))
    for r in (create, cancel, read):
        orders.wire_look(None, r)  # the run trades: everything leaves
    orders.closed = True
    with pytest.raises(RuntimeFailure) as err:
        orders.wire_look(None, create)
    assert err.value.code == "ENGINE_STOPPING" and "not sent" in err.value.message
    orders.wire_look(None, cancel)
    orders.wire_look(None, read)
    orders.wire_look(None, None)  # a request the transport cannot tie to a call
