"""Audit fixtures: an in-memory OS keyring, and a factory for small signed logs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring
import keyring.core
import pytest
from keyring.backend import KeyringBackend

from perpbot.audit import keystore
from perpbot.audit.subscriber import AuditLogger, attach_to_bus
from perpbot.config import AuditSection
from perpbot.events import Decision, EventBus, ExchangeCall


class MemoryKeyring(KeyringBackend):
    """A keyring that lives in a dict (negative priority: keyring never picks it itself)."""

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
def memory_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[MemoryKeyring]:
    """Every audit unit test runs against a fresh in-memory keyring."""
    monkeypatch.delenv("PYTHON_KEYRING_BACKEND", raising=False)
    previous = keyring.core._keyring_backend
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    keystore._warned.clear()
    yield ring
    keyring.core._keyring_backend = previous


@pytest.fixture
def no_keyring() -> Iterator[None]:
    """A machine without a usable keyring backend (keyring.backends.fail)."""
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())
    yield


@pytest.fixture
def logs(state_home: Path) -> Path:
    from perpbot.paths import logs_dir

    return logs_dir()


def exchange_call(bus: EventBus, i: int, method: str = "fetch_ticker", **kw: Any) -> ExchangeCall:
    fields: dict[str, Any] = {
        "request_id": bus.next_request_id(),
        "method": method,
        "http_method": "GET",
        "path": "/fapi/v1/ticker/price",
        "params": {"symbol": "BTCUSDT", "limit": i},
        "status": 200,
        "ok": True,
        "latency_ms": 1.5,
        "rate_headers": {"x-mbx-used-weight-1m": str(i)},
        "symbol": "BTC/USDT:USDT",
    }
    fields.update(kw)
    return ExchangeCall(**fields)


def publish_some(bus: EventBus, n: int, *, start: int = 0) -> None:
    """``n`` events: mostly reads, an order every 7th, a risk decision every 5th."""
    for i in range(start, start + n):
        if i % 5 == 4:
            bus.publish(Decision("risk", "info", "RISK_NOTE", f"note {i}", {"value": i}))
        elif i % 7 == 3:
            bus.publish(exchange_call(bus, i, "create_order", http_method="POST"))
        else:
            bus.publish(exchange_call(bus, i))


MakeLog = Callable[..., AuditLogger]


@pytest.fixture
def open_log(logs: Path) -> Iterator[Callable[..., tuple[EventBus, AuditLogger]]]:
    """Open a log on a fresh bus (closed at teardown if the test did not)."""
    opened: list[AuditLogger] = []

    def make(run: str = "run-a", **settings: Any) -> tuple[EventBus, AuditLogger]:
        bus = EventBus()
        audit = attach_to_bus(
            bus, run_id=run, profile="paper", command="run", settings=AuditSection(**settings)
        )
        opened.append(audit)
        return bus, audit

    yield make
    for audit in opened:
        audit.close()


@pytest.fixture
def make_log(open_log: Callable[..., tuple[EventBus, AuditLogger]]) -> MakeLog:
    """A closed log of ``n`` events; returns its logger (``.dir`` is the run's folder)."""

    def make(run: str = "run-a", n: int = 20, **settings: Any) -> AuditLogger:
        bus, audit = open_log(run, **settings)
        publish_some(bus, n)
        audit.close()
        return audit

    return make


@pytest.fixture
def publish() -> Callable[..., None]:
    """``publish(bus, n, start=0)``: see :func:`publish_some`."""
    return publish_some


@pytest.fixture
def call() -> Callable[..., ExchangeCall]:
    """``call(bus, i, method, **fields)``: an ExchangeCall event."""
    return exchange_call
