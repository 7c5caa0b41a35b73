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
