"""Core plumbing: atomic writes, the event bus, interruptible waits, client order ids."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from perpbot.client.orders import client_order_id, is_ours
from perpbot.client.waits import Interrupter, WaitInterrupted
from perpbot.events import Decision, EventBus
from perpbot.fsutil import atomic_write_json, read_json
from perpbot.redact import safe_params


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    tmp_path = tmp_path / "w"
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    atomic_write_json(target, {"v": 2})
    assert read_json(target) == {"v": 2}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]  # no temp files left


def test_atomic_write_failure_keeps_old_content(tmp_path: Path) -> None:
    tmp_path = tmp_path / "w"
    target = tmp_path / "a.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(TypeError):
        atomic_write_json(target, {1j: 2})  # a complex key cannot be serialised
    assert read_json(target) == {"v": 1}
    assert len(os.listdir(tmp_path)) == 1


def test_bus_detaches_broken_subscriber(capsys: pytest.CaptureFixture[str]) -> None:
    bus = EventBus()
    seen: list[str] = []

    def broken(_e: object) -> None:
        raise RuntimeError("boom")

    bus.subscribe(broken)
    bus.subscribe(lambda e: seen.append(e.code))  # type: ignore[union-attr]
    d = Decision("t", "info", "CODE", "a sentence")
    bus.publish(d)
    bus.publish(d)
    assert seen == ["CODE", "CODE"]
    assert "detached" in capsys.readouterr().err

    def critical(_e: object) -> None:
        raise RuntimeError("log down")

    bus2 = EventBus()
    bus2.subscribe(critical, critical=True)
    with pytest.raises(RuntimeError):
        bus2.publish(d)


async def test_interrupter_cuts_waits_short() -> None:
    intr = Interrupter()
    loop = asyncio.get_running_loop()
    loop.call_later(0.05, intr.interrupt, "kill switch")
    t0 = time.monotonic()
    with pytest.raises(WaitInterrupted, match="kill switch"):
        await intr.sleep(30)
    assert time.monotonic() - t0 < 5
    with pytest.raises(WaitInterrupted):
        await intr.sleep(1)  # stays interrupted until reset
    intr.reset()
    await intr.sleep(0.01)


def test_client_order_ids_are_deterministic_and_valid() -> None:
    a = client_order_id("run-1", "grid", 7)
    assert a == client_order_id("run-1", "grid", 7)
    assert a != client_order_id("run-2", "grid", 7)
    assert len(a) <= 36
    assert is_ours(a, "run-1", "grid") and not is_ours(a, "run-2", "grid")
    with pytest.raises(ValueError):
        client_order_id("r", "s", -1)


def test_redaction_is_an_allow_list() -> None:
    params = {
        "symbol": "BTCUSDT",
        "apiKey": "k",
        "secret": "s",
        "signature": "x",
        "listenKey": "l",
        "clientOrderId": "pb-1",
        "whatever": "y",
    }
    assert safe_params(params) == {"symbol": "BTCUSDT", "clientOrderId": "pb-1"}
