"""Connections to the simulator as stored profiles, for the scope-bypass tests and the
adversarial corpus: ``Session`` (its ``session`` fixture closes them at teardown) and
``denied``, which asserts a call is refused before any request reaches the simulator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from perpbot.app.connect import Connection, connect
from perpbot.config import ExchangeSection
from perpbot.errors import PermissionDenied
from perpbot.events import Decision, EventBus
from tests.keys_support.profiles import store

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
FULL_RUN = {"run": {"read", "trade", "cancel", "leverage"}}


class Session:
    """Connections to the simulator as stored profiles; all closed at teardown."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.key, self.secret = sim.create_account()
        self.conns: list[Connection] = []
        self.decisions: list[Decision] = []

    async def connect(self, profile: str, command: str = "run", **grant: Any) -> Connection:
        commands = grant.pop("commands", FULL_RUN)
        store(profile, self.key, self.secret, commands=commands, **grant)
        bus = EventBus()
        bus.subscribe(lambda e: self.decisions.append(e) if isinstance(e, Decision) else None)
        conn = await connect(
            ExchangeSection(id="sim", url=self.sim.base_url, profile=profile),
            command=command,
            run_id=f"test-{profile}",
            bus=bus,
        )
        self.conns.append(conn)
        return conn

    def requests(self) -> int:
        return int(self.sim.state()["counters"]["requests"])

    def account(self) -> dict[str, Any]:
        return next(a for a in self.sim.state()["accounts"] if a["api_key"] == self.key)

    def position(self, symbol: str = "BTCUSDT") -> float:
        rows = [p for p in self.account()["positions"] if p["symbol"] == symbol]
        return float(rows[0]["positionAmt"]) if rows else 0.0


@pytest.fixture
async def session(sim: Any) -> AsyncIterator[Session]:
    s = Session(sim)
    yield s
    for conn in s.conns:
        await conn.close()


async def denied(s: Session, call: Any) -> PermissionDenied:
    before = s.requests()
    with pytest.raises(PermissionDenied) as info:
        await call
    assert s.requests() == before, "a denied call must not reach the simulator"
    assert s.decisions[-1].action == "deny" and s.decisions[-1].code == info.value.code
    return info.value
