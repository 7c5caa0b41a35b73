"""The live source: a second simulator is the upstream exchange, watched through ccxt.pro.

Offline by construction: the upstream is a simulator on 127.0.0.1 whose public trade
stream ccxt.pro's binanceusdm watches exactly as it would watch Binance's.
"""

from __future__ import annotations

import time

from perpbot.sim import SimHandle
from tests.sim.conftest import BTC, make_sync, quiet_config, quiet_market

WAIT_S = 30.0


def _live_config(upstream: SimHandle) -> object:
    source = {
        "kind": "live",
        "exchange": "binanceusdm",
        "symbols": {"BTCUSDT": BTC},
        "url": upstream.base_url,
    }
    return quiet_config(clock="wall", source=source)


def _received(handle: SimHandle) -> int:
    return handle.server.engine.feed.received  # type: ignore[union-attr]


def test_live_source_follows_the_upstream_trades(sim_factory) -> None:
    upstream = sim_factory(quiet_config(market=quiet_market(taker_rate=4.0)))
    down = sim_factory(_live_config(upstream))
    up_ex, down_ex = make_sync(upstream), make_sync(down)
    deadline = time.monotonic() + WAIT_S
    while _received(down) == 0:  # ccxt.pro subscribes asynchronously: trade until it hears
        assert time.monotonic() < deadline, "the live source never received a trade"
        upstream.advance(2_000)
        time.sleep(0.05)
    upstream.jump("BTCUSDT", 2.0)
    for _ in range(5):
        upstream.advance(2_000)
    target = up_ex.fetch_ticker(BTC)["last"]
    assert target > 61_000  # the upstream moved 2 %
    deadline = time.monotonic() + WAIT_S
    while down_ex.fetch_ticker(BTC)["last"] != target:
        assert time.monotonic() < deadline, "the downstream never caught up"
        time.sleep(0.05)
    up_prices = {t["price"] for t in up_ex.fetch_trades(BTC, limit=1000)}
    down_trades = down_ex.fetch_trades(BTC, limit=1000)
    assert down_trades and {t["price"] for t in down_trades} <= up_prices
    assert down.server.live.errors == 0  # type: ignore[attr-defined]


def test_upstream_outage_is_counted_and_the_market_stands_still(sim_factory) -> None:
    """Adversarial: the upstream goes away. The downstream keeps serving, counts the failed
    watches (retried with backoff), and its price stays where the last trade left it."""
    upstream = sim_factory(quiet_config(market=quiet_market(taker_rate=4.0)))
    down = sim_factory(_live_config(upstream))
    down_ex = make_sync(down)
    deadline = time.monotonic() + WAIT_S
    while _received(down) == 0:
        assert time.monotonic() < deadline, "the live source never received a trade"
        upstream.advance(2_000)
        time.sleep(0.05)
    upstream.stop()
    live = down.server.live  # type: ignore[attr-defined]
    deadline = time.monotonic() + WAIT_S
    while live.errors == 0:
        assert time.monotonic() < deadline, "the outage was never noticed"
        time.sleep(0.05)
    assert live.last_error
    time.sleep(0.5)  # trades already received are applied at the next market step (200 ms)
    received, last = _received(down), down_ex.fetch_ticker(BTC)["last"]
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # retries go on; nothing arrives, nothing moves
        assert down_ex.fetch_ticker(BTC)["last"] == last
        time.sleep(0.1)
    assert _received(down) == received and live.errors >= 1
