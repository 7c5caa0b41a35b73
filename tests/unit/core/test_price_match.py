"""priceMatch orders: the boundary's refusals and the valuation the scope and risk gates use
(perpbot.client.price_match). Pure functions; the simulator tests are in
tests/adversarial/test_price_match_orders.py and tests/integration/test_price_match_run.py."""

from __future__ import annotations

from typing import Any

import pytest

from perpbot.client.price_match import (
    BOOK_LEVEL,
    MATCH_MAX_AGE_S,
    PRICE_MATCHES,
    band_up,
    matched_price,
    valuation,
)
from perpbot.client.request import OrderSpec, Request
from perpbot.client.validate import OrderRefused, wire_order
from perpbot.config import RiskSection
from perpbot.risk.exposure import check_order_notional
from perpbot.risk.inputs import CheckInput
from perpbot.risk.pretrade import check_price_band

BTC = "BTC/USDT:USDT"
BIDS = [[100.0 - i, 1.0] for i in range(20)]  # 100, 99, ... 81
ASKS = [[101.0 + i, 1.0] for i in range(20)]  # 101, 102, ... 120
MARKET = {"info": {"filters": [{"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500",
                                "multiplierDown": "0.9500"}]}}  # fmt: skip


@pytest.mark.parametrize(
    ("side", "match", "want"),
    [
        ("buy", "OPPONENT", 101.0),
        ("buy", "OPPONENT_5", 105.0),
        ("buy", "OPPONENT_10", 110.0),
        ("buy", "OPPONENT_20", 120.0),
        ("buy", "QUEUE", 100.0),
        ("buy", "QUEUE_5", 96.0),
        ("sell", "OPPONENT", 100.0),
        ("sell", "OPPONENT_20", 81.0),
        ("sell", "QUEUE", 101.0),
        ("sell", "QUEUE_10", 110.0),
    ],
)
def test_the_matched_level_is_the_nth_of_the_side_binance_names(
    side: str, match: str, want: float
) -> None:
    assert matched_price(side, match, BIDS, ASKS) == want


def test_a_book_without_the_level_matches_nothing() -> None:
    assert matched_price("buy", "OPPONENT_5", BIDS, ASKS[:4]) is None  # Binance: -5041
    assert matched_price("sell", "QUEUE", BIDS, []) is None


def test_the_band_edge_comes_from_the_markets_percent_price_filter() -> None:
    assert band_up(MARKET) == pytest.approx(1.05)
    assert band_up({"info": {"filters": []}}) is None
    assert band_up(None) is None


def test_a_fresh_reading_values_at_its_level_a_stale_or_missing_one_at_the_band_edge() -> None:
    now = 1_000.0
    assert valuation(105.0, now - 1.0, MARKET, [100.0], now) == (105.0, BOOK_LEVEL)
    stale, how = valuation(105.0, now - MATCH_MAX_AGE_S - 0.1, MARKET, [100.0, 102.0], now)
    assert stale == pytest.approx(102.0 * 1.05) and "stale" in how  # the highest mark known
    missing, how = valuation(None, None, MARKET, [100.0], now)
    assert missing == pytest.approx(105.0) and "band edge" in how
    future, _ = valuation(105.0, now + 10.0, MARKET, [100.0], now)  # a clock gone backwards
    assert future == pytest.approx(105.0)  # the band edge, not the reading
    assert valuation(None, None, MARKET, [], now)[0] is None  # no mark: unknown
    assert valuation(None, None, None, [100.0], now)[0] is None  # no band: unknown


def _order(*args: Any, **params: Any) -> Request:
    return Request("create_order", args=args, kwargs={"params": params}, symbol=BTC)


@pytest.mark.parametrize("match", list(PRICE_MATCHES))
def test_the_boundary_accepts_each_of_binances_values_on_a_limit_without_price(
    match: str,
) -> None:
    wire = wire_order(_order(BTC, "limit", "buy", 0.01, None, priceMatch=match))
    assert wire.price_match == match and wire.price is None and wire.type == "limit"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((BTC, "limit", "buy", 0.01, None), "NONE"),  # "no match": send a price instead
        ((BTC, "limit", "buy", 0.01, None), "opponent"),  # Binance's enum is upper case
        ((BTC, "limit", "buy", 0.01, None), "OPPONENT_3"),
        ((BTC, "limit", "buy", 0.01, None), "BEST"),
        ((BTC, "limit", "buy", 0.01, None), 5),
        ((BTC, "limit", "buy", 0.01, 100.0), "OPPONENT"),  # never with a price
        ((BTC, "market", "buy", 0.01, None), "QUEUE"),  # LIMIT only
    ],
)
def test_the_boundary_refuses_the_rest_with_one_code(args: tuple[Any, ...], match: Any) -> None:
    with pytest.raises(OrderRefused) as info:
        wire_order(_order(*args, priceMatch=match))
    assert info.value.code == "BAD_PRICE_MATCH", info.value.message


def test_a_spec_sends_its_price_match_and_the_wire_must_agree() -> None:
    spec = OrderSpec(BTC, "buy", "limit", 0.01, price_match="QUEUE_5")
    assert spec.ccxt_params() == {"priceMatch": "QUEUE_5"}
    assert wire_order(Request.for_order(spec)).price_match == "QUEUE_5"
    lying = Request.for_order(spec)
    lying.kwargs["params"] = {"priceMatch": "OPPONENT_20"}  # not what the spec says
    with pytest.raises(OrderRefused) as info:
        wire_order(lying)
    assert info.value.code == "BAD_PARAM" and "priceMatch" in info.value.message
    plain = Request.for_order(OrderSpec(BTC, "buy", "limit", 0.01))  # neither: no price
    with pytest.raises(OrderRefused) as info:
        wire_order(plain)
    assert info.value.code == "BAD_PRICE"


def test_the_risk_checks_value_the_order_at_its_match_price() -> None:
    cfg = RiskSection(max_order_notional=1_000.0, price_band_pct=2.0)
    spec = OrderSpec(BTC, "buy", "limit", 10.0, price_match="OPPONENT_5")
    # the book's 5th ask at 105: 1,050 > 1,000 although the reference (100) says 1,000
    over = CheckInput(spec=spec, now=0.0, prices={BTC: 100.0}, index=100.0,
                      match_price=105.0, match_from_book=True)  # fmt: skip
    assert over.price == 105.0
    rejection = check_order_notional(over, cfg)
    assert rejection is not None and rejection.code == "RISK_MAX_ORDER_NOTIONAL"
    band = check_price_band(over, cfg)  # 5 % above the index: outside a 2 % band
    assert band is not None and band.code == "RISK_PRICE_BAND" and band.data["price"] == 105.0
    within = CheckInput(spec=spec, now=0.0, prices={BTC: 100.0}, index=100.0,
                        match_price=99.0, match_from_book=True)  # fmt: skip
    assert check_order_notional(within, cfg) is None and check_price_band(within, cfg) is None
    unknown = CheckInput(spec=spec, now=0.0, prices={BTC: 100.0}, match_price=None)
    rejection = check_order_notional(unknown, cfg)
    assert rejection is not None and rejection.code == "RISK_NO_PRICE"
    # the band edge is no price the book would give it: not judged against the band
    edge = CheckInput(spec=spec, now=0.0, prices={BTC: 100.0}, index=100.0,
                      match_price=105.0, match_from_book=False)  # fmt: skip
    assert check_price_band(edge, cfg) is None
