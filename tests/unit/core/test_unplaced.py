"""Who placed an order the run did not place, by its client id; which stream updates are
fills (perpbot.engine.unplaced). The integration tests (tests/integration/
test_unplaced_fills.py) check the decisions against the simulator."""

from __future__ import annotations

from perpbot.client.orders import client_order_id, strategy_tag
from perpbot.engine.unplaced import kind_of, origin_of, trade_of_update

TAG = strategy_tag("grid")


def test_binance_names_its_own_closes() -> None:
    assert kind_of("autoclose-1700000000123") == "liquidation"
    assert kind_of("adl_autoclose") == "adl"
    assert kind_of("adl_autoclose-17000") == "adl"
    assert kind_of("x-abc-autoclose-1") == "foreign"  # the prefix, not a substring


def test_a_foreign_orders_origin_is_told_from_its_client_id() -> None:
    earlier = client_order_id("an earlier run", "grid", 3)
    other = client_order_id("some run", "another strategy", 0)
    assert origin_of(earlier, TAG) == "an order of an earlier run of this strategy"
    assert origin_of(other, TAG) == "another perpbot bot's order"
    assert origin_of("pbk-flatten-0", TAG) == "a `perpbot flatten` order"
    assert origin_of("pbk-k20261207-1", TAG) == "a `perpbot kill --direct` order"
    assert origin_of("web_8f3a", TAG) == "a manual order or another program's"


def test_only_an_update_that_tells_a_fill_is_a_trade() -> None:
    def update(**info: object) -> dict[str, object]:
        return {"id": "42", "symbol": "BTC/USDT:USDT", "info": {"i": 42, "S": "SELL", **info}}

    fill = trade_of_update(update(x="CALCULATED", t=7, l="0.5", L="56000.1", T=1))
    assert fill is not None
    assert (fill["id"], fill["order"], fill["side"]) == ("7", "42", "sell")
    assert (fill["amount"], fill["price"], fill["timestamp"]) == (0.5, 56000.1, 1)
    assert trade_of_update(update(x="TRADE", t=8, l="0.1", L="1")) is not None
    assert trade_of_update(update(x="NEW", t=0, l="0", L="0")) is None
    assert trade_of_update(update(x="EXPIRED", t=0, l="0", L="0")) is None
    assert trade_of_update(update(x="TRADE", t=9, l="0", L="1")) is None
