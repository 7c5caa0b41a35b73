"""Fixtures for the rate-limit and idempotency integration tests.

- ``redis_url``: a real ``redis-server`` on a free loopback port, started for the test and
  stopped after it (skipped, visibly, only when the binary is not installed);
- ``open_guarded``: a GuardedClient with the full pipeline, talking ccxt over HTTP to a
  simulator, with the ``[limits]`` / ``[retry]`` a test asks for;
- ``decisions``: helpers to look at what the layers explained.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from perpbot.events import Decision, EventBus, ExchangeCall

SYMBOL = "BTC/USDT:USDT"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def redis_url() -> Iterator[str]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    import redis

    port = free_port()
    proc = subprocess.Popen(
        [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=1)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("redis-server did not start") from None
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)


@dataclass
class Recorder:
    """Everything published on a bus, for assertions."""

    events: list[Any] = field(default_factory=list)

    def __call__(self, event: Any) -> None:
        self.events.append(event)

    @property
    def decisions(self) -> list[Decision]:
        return [e for e in self.events if isinstance(e, Decision)]

    @property
    def calls(self) -> list[ExchangeCall]:
        return [e for e in self.events if isinstance(e, ExchangeCall)]

    def codes(self) -> list[str]:
        return [d.code for d in self.decisions]

    def of(self, code: str) -> list[Decision]:
        return [d for d in self.decisions if d.code == code]


def strategy_config(
    limits: dict[str, Any] | None = None, retry: dict[str, Any] | None = None
) -> Any:
    from perpbot.config import StrategyFile

    return StrategyFile.model_validate(
        {
            "strategy": {"name": "t", "file": "t.py", "symbols": [SYMBOL]},
            "limits": limits or {},
            "retry": retry or {},
            # these tests are about the rate budget and retries, on a client with no engine
            # to feed [risk] its marks and balance: risk checks off, explicitly
            "risk": {"enabled": False},
        }
    )


@contextlib.asynccontextmanager
async def _open(
    sim: Any,
    *,
    key: tuple[str, str] | None = None,
    limits: dict[str, Any] | None = None,
    retry: dict[str, Any] | None = None,
    timeout_ms: int = 10000,
    public: bool = False,
    run_id: str = "it-run",
) -> AsyncIterator[tuple[Any, Recorder]]:
    from perpbot.app.pipeline import build_client
    from perpbot.client.setup import Credentials, Setup
    from perpbot.config import ExchangeSection

    bus = EventBus()
    rec = Recorder()
    bus.subscribe(rec)
    if public:
        creds = Credentials(api_key=None, secret=None)
    else:
        api_key, secret = key or sim.create_account()
        creds = Credentials(api_key=api_key, secret=secret)
    setup = Setup(
        exchange=ExchangeSection(id="sim", url=sim.base_url, timeout_ms=timeout_ms),
        command="test",
        run_id=run_id,
        bus=bus,
        credentials=creds,
        base_url=sim.base_url,
        config=strategy_config(limits, retry),
        strategy="t",
    )
    client = build_client(setup)
    client.setup = setup  # type: ignore[attr-defined]
    try:
        await client.load_markets()
        yield client, rec
    finally:
        await client.close()


@pytest.fixture
def open_guarded() -> Any:
    """``async with open_guarded(sim, limits={...}) as (client, recorder): ...``"""
    return _open
