"""Fixtures for the simulator tests: a manual-clock simulator per test and ccxt clients.

Every test talks to the simulator over real HTTP on an ephemeral 127.0.0.1 port with
unmodified ccxt, configured exactly like production via ``configure_loopback``. The
market is quiet (no drift, no jumps, no synthetic takers) unless a test asks otherwise,
so prices are predictable: mid 60000, crowd bid 59999.9 / ask 60000.0 for BTCUSDT; the
perp's premium and the index venues' noise are off too, so mark = index = 60000.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import ccxt
import ccxt.async_support as accxt
import pytest

from perpbot.client.loopback import configure_loopback
from perpbot.sim import SimConfig, SimHandle, start_in_thread
from perpbot.sim.config import MarketConfig

BTC = "BTC/USDT:USDT"
ETH = "ETH/USDT:USDT"


def quiet_market(**overrides: Any) -> MarketConfig:
    """No drift, jumps, takers, premium or venue noise (``overrides`` switch some back on)."""
    quiet: dict[str, Any] = {
        "volatility": 0.0,
        "jump_rate": 0.0,
        "taker_rate": 0.0,
        "history_minutes": 120,
        "premium_vol": 0.0,
        "premium_regime_vol": 0.0,
        "venue_noise": 0.0,
        "venue_bias": 0.0,
        "venue_outage_per_h": 0.0,
    }
    return MarketConfig(**{**quiet, **overrides})


def quiet_config(**overrides: Any) -> SimConfig:
    market = overrides.pop("market", None) or quiet_market()
    return SimConfig(**{"seed": 7, "clock": "manual", **overrides}, market=market)


@pytest.fixture
def sim_factory() -> Iterator[Callable[..., SimHandle]]:
    handles: list[SimHandle] = []

    def make(cfg: SimConfig | None = None) -> SimHandle:
        handle = start_in_thread(cfg or quiet_config(), host="127.0.0.1", port=0)
        handles.append(handle)
        return handle

    yield make
    for handle in handles:
        handle.stop()


@pytest.fixture
def sim(sim_factory: Callable[..., SimHandle]) -> SimHandle:
    return sim_factory()


def make_async(
    handle: SimHandle, key: str | None = None, secret: str | None = None, **extra: Any
) -> accxt.binanceusdm:
    config: dict[str, Any] = {"enableRateLimit": False, "timeout": 5000}
    if key is not None:
        config.update(apiKey=key, secret=secret)
    config.update(extra)
    ex = accxt.binanceusdm(config)
    configure_loopback(ex, handle.base_url)
    return ex


def make_sync(
    handle: SimHandle, key: str | None = None, secret: str | None = None, **extra: Any
) -> ccxt.binanceusdm:
    config: dict[str, Any] = {"enableRateLimit": False, "timeout": 5000}
    if key is not None:
        config.update(apiKey=key, secret=secret)
    config.update(extra)
    ex = ccxt.binanceusdm(config)
    configure_loopback(ex, handle.base_url)
    return ex


@pytest.fixture
async def client(sim: SimHandle) -> AsyncIterator[accxt.binanceusdm]:
    key, secret = sim.create_account()
    ex = make_async(sim, key, secret)
    await ex.load_markets()
    try:
        yield ex
    finally:
        await ex.close()
