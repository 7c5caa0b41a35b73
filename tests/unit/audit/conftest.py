"""Audit fixtures: an in-memory OS keyring, and helpers to build logs from events."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backend import KeyringBackend

from perpbot.audit import keystore


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in a dict (negative priority: never picked on its own)."""

    priority = -1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)


@pytest.fixture(autouse=True)
def memory_keyring() -> Iterator[MemoryKeyring]:
    """Every audit unit test runs against a fresh in-memory keyring."""
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    keystore._warned.clear()
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture
def logs(state_home: Path) -> Path:
    from perpbot.paths import logs_dir

    return logs_dir()


def make_log(run: str, n: int = 20, **settings: Any) -> Path:
    """A closed log of ``n`` exchange calls and decisions under the state dir."""
    from perpbot.audit.subscriber import attach_to_bus
    from perpbot.config import AuditSection
    from perpbot.events import Decision, EventBus, ExchangeCall

    bus = EventBus()
    audit = attach_to_bus(
        bus, run_id=run, profile="paper", command="run", settings=AuditSection(**settings)
    )
    for i in range(n):
        if i % 5 == 4:
            bus.publish(
                Decision("risk", "reject", "RISK_MAX_NOTIONAL", f"order {i} too big", {"value": i})
            )
        else:
            method = "create_order" if i % 7 == 3 else "fetch_ticker"
            bus.publish(
                ExchangeCall(
                    request_id=bus.next_request_id(),
                    method=method,
                    http_method="GET",
                    path="/fapi/v1/ticker/price",
                    params={"symbol": "BTCUSDT", "amount": i},
                    status=200,
                    ok=True,
                    latency_ms=1.5,
                    rate_headers={"x-mbx-used-weight-1m": str(i)},
                    symbol="BTC/USDT:USDT",
                )
            )
    audit.close()
    return audit.dir
