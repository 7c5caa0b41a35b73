"""Conditional orders and the account's position mode (perpbot.engine.conditional):
what each mode sends to POST /fapi/v1/algoOrder, and what it refuses before any request.

Binance New Algo Order: positionSide "must be sent in Hedge Mode", reduceOnly "cannot be sent
in Hedge Mode":
https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Algo-Order
"""

from __future__ import annotations

from typing import Any

import pytest

from perpbot.client.request import Request
from perpbot.engine.conditional import ConditionalSpec, side_refusal, view_of, wire_params

BTC = "BTC/USDT:USDT"


class Precise:
    """The two ccxt precision calls wire_params makes, as plain strings."""

    def amount_to_precision(self, symbol: str, amount: float) -> str:
        return f"{amount:.3f}"

    def price_to_precision(self, symbol: str, price: float) -> str:
        return f"{price:.1f}"


def spec(**kw: Any) -> ConditionalSpec:
    base: dict[str, Any] = {"symbol": BTC, "side": "sell", "kind": "stop_market",
                            "trigger_price": 59000.0, "client_order_id": "c1"}  # fmt: skip
    return ConditionalSpec(**{**base, **kw})


@pytest.mark.parametrize(
    ("hedged", "kw", "why"),
    [
        (True, {"amount": 0.01}, "needs position_side LONG or SHORT"),
        (True, {"amount": 0.01, "position_side": "BOTH"}, "needs position_side LONG or SHORT"),
        (True, {"amount": 0.01, "position_side": "long"}, "expected LONG or SHORT"),
        (True, {"amount": 0.01, "position_side": "SHORT", "reduce_only": True}, "would open it"),
        (False, {"amount": 0.01, "position_side": "LONG"}, "one-way account"),
    ],
)
def test_a_side_that_does_not_fit_the_mode_is_refused(
    hedged: bool, kw: dict[str, Any], why: str
) -> None:
    refusal = side_refusal(spec(**kw), hedged)
    assert refusal is not None and why in refusal


def test_hedge_mode_sends_the_side_and_never_reduce_only() -> None:
    close = spec(amount=0.01, position_side="LONG", reduce_only=True)
    assert side_refusal(close, True) is None
    assert close.reduce_only is False and view_of(close).reduces_only  # a SELL LONG closes
    wire = wire_params(close, "BTCUSDT", Precise())
    assert wire["positionSide"] == "LONG" and "reduceOnly" not in wire
    assert wire["quantity"] == "0.010"
    whole = spec(kind="stop_market", side="buy", close_position=True, position_side="SHORT")
    assert side_refusal(whole, True) is None
    wire = wire_params(whole, "BTCUSDT", Precise())
    assert (wire["positionSide"], wire["closePosition"], wire["side"]) == ("SHORT", "true", "BUY")
    opening = spec(side="buy", kind="stop_market", amount=0.01, position_side="LONG")
    assert side_refusal(opening, True) is None and not view_of(opening).reduces_only


def test_one_way_mode_is_unchanged() -> None:
    stop = spec(amount=0.01, reduce_only=True)
    assert side_refusal(stop, False) is None and stop.reduce_only is True
    wire = wire_params(stop, "BTCUSDT", Precise())
    assert wire["reduceOnly"] == "true" and "positionSide" not in wire


def test_a_hedge_algo_close_may_use_the_rate_limiters_reserve() -> None:
    close = wire_params(spec(amount=0.01, position_side="LONG"), "BTCUSDT", Precise())
    assert Request("fapiprivate_post_algoorder", (close,)).risk_reducing
    opening = wire_params(spec(side="buy", amount=0.01, position_side="LONG"), "BTCUSDT", Precise())
    assert not Request("fapiprivate_post_algoorder", (opening,)).risk_reducing
