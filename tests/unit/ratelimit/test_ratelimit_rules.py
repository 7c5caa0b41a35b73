"""Where budgets come from (exchangeInfo, else [limits]) and how headers are read."""

from __future__ import annotations

from perpbot.client.headers import retry_after_s, usage_headers
from perpbot.config import LimitsSection
from perpbot.ratelimit.rules import Rule, from_config, from_exchange_info, window_label

BINANCE = {
    "rateLimits": [
        {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
        {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
        {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
        {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
    ]
}


def test_reads_binance_rate_limits() -> None:
    rules = from_exchange_info(BINANCE)
    assert rules is not None and rules.source == "exchange"
    assert rules.of("weight") == [Rule("weight", 60, 2400)]
    assert rules.of("orders") == [Rule("orders", 10, 300), Rule("orders", 60, 1200)]


def test_no_published_limits_means_none() -> None:
    assert from_exchange_info({"symbols": []}) is None
    assert from_exchange_info(None) is None
    assert from_exchange_info({"rateLimits": [{"rateLimitType": "ORDERS", "limit": "x"}]}) is None


def test_config_fallback() -> None:
    assert from_config(LimitsSection()) is None
    rules = from_config(LimitsSection(weight_per_minute=1000, orders_per_10s=50))
    assert rules is not None and rules.source == "config"
    assert set(rules.rules) == {Rule("weight", 60, 1000), Rule("orders", 10, 50)}


def test_usage_header_names_that_do_not_end_in_a_window_are_not_read() -> None:
    """The window is read from the name with string methods (no regex): a name that does
    not end in ``<number><s|m|h|d>`` after the prefix is kept as a rate header, but counts
    nothing."""
    headers = {
        "X-MBX-USED-WEIGHT-": "5",
        "x-mbx-used-weight-m": "5",
        "x-mbx-used-weight-1x": "5",
        "x-mbx-used-weight-1m-2": "5",
        "x-mbx-order-count-1.5m": "5",
        "x-mbx-order-count-10S": "7",
    }
    assert usage_headers(headers) == [("orders", 10, 7)]


def test_usage_headers_any_window_any_case() -> None:
    headers = {
        "X-MBX-USED-WEIGHT-1M": "812",
        "x-mbx-order-count-10s": "3",
        "X-MBX-ORDER-COUNT-1D": "40",
        "X-MBX-USED-WEIGHT-2S": "bogus",
        "Content-Type": "application/json",
    }
    assert sorted(usage_headers(headers)) == [
        ("orders", 10, 3),
        ("orders", 86400, 40),
        ("weight", 60, 812),
    ]
    assert retry_after_s({"Retry-After": "12"}) == 12.0
    assert retry_after_s({"retry-after": "soon"}) is None
    assert retry_after_s({}) is None
    assert [window_label(s) for s in (1, 10, 60, 120, 3600, 86400)] == [
        "1s",
        "10s",
        "1m",
        "2m",
        "1h",
        "1d",
    ]
