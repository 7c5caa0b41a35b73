"""How a stream connection's sentences name its endpoint (perpbot.ratelimit.connections)."""

from __future__ import annotations

import pytest

from perpbot.ratelimit.connections import endpoint


@pytest.mark.parametrize(
    ("url", "named"),
    [
        # a user stream: the listen key (its last segment) is never named
        (
            "wss://fstream.binance.com/ws/pqia91ma19a5s61cv6a81va65sdf19v8a65a1?x=1",
            "wss://fstream.binance.com/ws",
        ),
        ("ws://127.0.0.1:8765/ws/listenKeyABC", "ws://127.0.0.1:8765/ws"),
        # a combined market stream: the stream names (the query, slashes included) are cut
        (
            "wss://fstream.binance.com/stream?streams=btcusdt@depth/ethusdt@depth",
            "wss://fstream.binance.com",
        ),
        ("ws://127.0.0.1:8765/stream?streams=a/b#frag", "ws://127.0.0.1:8765"),
    ],
)
def test_endpoint_names_the_host_and_path_not_the_key_or_streams(url: str, named: str) -> None:
    assert endpoint(url) == named
    assert "listenKey" not in endpoint(url) and "pqia91" not in endpoint(url)
