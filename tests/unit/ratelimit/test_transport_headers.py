"""What the observed transport keeps of a response: its rate-limit headers, by name."""

from __future__ import annotations

import pytest

from perpbot.client.transport import rate_headers, url_path

BINANCE = {  # a real Binance USD-M response's headers (lower-case, as it sends them)
    "content-type": "application/json",
    "content-length": "366",
    "connection": "keep-alive",
    "date": "Sat, 05 Dec 2026 18:46:00 GMT",
    "server": "Tengine",
    "x-mbx-used-weight-1m": "17",
    "x-response-time": "3ms",
    "x-mbx-uuid": "0c1c2d3e-aaaa-bbbb-cccc-0123456789ab",
    "strict-transport-security": "max-age=31536000; includeSubdomains",
    "x-frame-options": "SAMEORIGIN",
    "x-cache": "Miss from cloudfront",
}


def test_only_usage_counters_and_retry_after_are_kept() -> None:
    assert rate_headers(BINANCE) == {"x-mbx-used-weight-1m": "17"}
    for _ in range(2):  # names already judged are judged the same
        assert rate_headers(BINANCE) == {"x-mbx-used-weight-1m": "17"}


def test_names_first_seen_later_are_recognised_in_any_case() -> None:
    order = {
        **BINANCE,
        "X-MBX-ORDER-COUNT-10S": "3",
        "X-MBX-ORDER-COUNT-1M": "9",
        "Retry-After": "12",
        "X-Something-Else": "1",
    }
    assert rate_headers(order) == {
        "x-mbx-used-weight-1m": "17",
        "X-MBX-ORDER-COUNT-10S": "3",
        "X-MBX-ORDER-COUNT-1M": "9",
        "Retry-After": "12",
    }


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("https://fapi.binance.com/fapi/v1/order?symbol=BTCUSDT&signature=ab", "/fapi/v1/order"),
        ("http://127.0.0.1:8123/fapi/v1/ticker/24hr", "/fapi/v1/ticker/24hr"),
        ("http://127.0.0.1:8123", "/"),
        ("http://h/fapi/v1/time#frag", "/fapi/v1/time"),
        ("/fapi/v2/account?timestamp=1", "/fapi/v2/account"),
    ],
)
def test_the_path_of_a_url(url: str, path: str) -> None:
    assert url_path(url) == path
