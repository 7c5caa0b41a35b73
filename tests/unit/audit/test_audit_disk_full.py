"""The signed log on a really full disk (a small tmpfs, root only): what it holds, when it
writes it, and what `verify` then says. The files on the disk are the truth.

- space comes back: the held records become one signed gap record, the torn tail of the
  failed write is cut off, the log goes on; verify reports the gap (and only with
  ``--accept-gaps`` calls the log acceptable);
- space never comes back and even the reserve is taken: the gap record goes to the
  emergency file (signed) and verify says the run's log was not closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from perpbot.audit.gap import RESERVE_BYTES, RESERVE_NAME, emergency_path
from perpbot.audit.subscriber import AuditLogger, LogCannotRecord, attach_to_bus
from perpbot.audit.tree import verify_tree
from perpbot.client.request import Request
from perpbot.config import AuditSection
from perpbot.errors import RuntimeFailure
from perpbot.events import EventBus
from tests.unit.audit.conftest import exchange_call


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "tiny"
    disk.mkdir()
    mount = ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)]
    if subprocess.run(mount, capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path, name: str = "filler") -> None:
    with contextlib.suppress(OSError), open(disk / name, "wb") as fh:
        while True:
            fh.write(b"\0" * 4096)
            fh.flush()


def _open(disk: Path) -> tuple[EventBus, AuditLogger]:
    bus = EventBus()
    audit = attach_to_bus(
        bus,
        run_id="run-a",
        profile=None,
        command="run",
        settings=AuditSection(checkpoint_interval_s=0.1),
        root=disk / "logs",
    )
    return bus, audit


def _cancel(bus: EventBus, i: int) -> Any:
    return exchange_call(
        bus,
        i,
        "cancel_order",
        http_method="DELETE",
        path="/fapi/v1/order",
        params={"symbol": "BTCUSDT", "clientOrderId": f"pb-x-{i}"},
        risk_reducing=True,
    )


def _break(bus: EventBus, audit: AuditLogger, disk: Path) -> list[str]:
    """Fill the disk, then cancel until the log cannot write: the cancels surely held."""
    _fill(disk)
    held = []
    for i in range(10_000):
        bus.publish(_cancel(bus, i))  # a risk-reducing request never raises
        if audit.writer.broken:
            break
    assert audit.writer.broken
    for i in range(10_000, 10_030):  # more than a page: no room left in the last one
        bus.publish(_cancel(bus, i))
        held.append(f"pb-x-{i}")
    return held


def _records(disk: Path) -> list[dict[str, Any]]:
    lines = []
    for f in sorted((disk / "logs" / "run-a").glob("audit-*.jsonl")):
        lines += f.read_bytes().split(b"\n")
    return [json.loads(ln) for ln in lines if ln]  # a torn line would not parse: none


def test_space_back_the_held_requests_become_a_signed_gap_and_the_log_goes_on(
    tiny: Path,
) -> None:
    bus, audit = _open(tiny)
    held = _break(bus, audit, tiny)
    # an ordinary request's record: the publisher learns; one is not even sent
    with pytest.raises(RuntimeFailure, match="cannot record requests"):
        bus.publish(exchange_call(bus, 1, "create_order", http_method="POST"))
    ordinary = Request("create_order", symbol="BTC/USDT:USDT")
    with pytest.raises(LogCannotRecord, match="not sent: create_order"):
        audit.wire_look(None, ordinary)  # type: ignore[arg-type]
    audit.wire_look(None, Request("cancel_order", symbol="BTC/USDT:USDT"))  # leaves
    (tiny / "filler").unlink()
    deadline = time.monotonic() + 10
    while audit.writer.broken and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not audit.writer.broken  # the timer wrote the gap once the disk took it
    bus.publish(exchange_call(bus, 2))  # and the log records again
    audit.close()

    records = _records(tiny)
    assert [r["seq"] for r in records] == list(range(len(records)))
    (gap,) = [r for r in records if r["kind"] == "gap"]
    assert "sig" in gap and gap["from_memory"] is True
    sent = [r for r in gap["records"] if r["kind"] == "exchange"]
    cancels = {r["params"].get("clientOrderId") for r in sent if r["method"] == "cancel_order"}
    assert set(held) <= cancels  # every cancel that went out unrecorded is in it
    written = {
        r["params"].get("clientOrderId")
        for r in records
        if r["kind"] == "exchange" and r["method"] == "cancel_order"
    }
    assert not written & cancels  # and nothing written at the time is in it again
    assert gap["requests"] == len(sent)  # the create whose record failed is counted too
    assert any(r["method"] == "create_order" for r in sent)
    assert records[-1]["kind"] == "close"
    report = verify_tree(tiny / "logs", verifier=None)
    assert not report.damages
    assert [g["seq"] for g in report.gaps] == [gap["seq"]]
    assert report.unrecorded_requests == gap["requests"]


def test_still_full_at_close_with_the_reserve_taken_the_gap_goes_to_the_emergency_file(
    tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "tmp"
    elsewhere.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(elsewhere))
    bus, audit = _open(tiny)
    held = _break(bus, audit, tiny)
    # another process takes the room the reserve would give back
    (tiny / "logs" / "run-a" / RESERVE_NAME).unlink()
    _fill(tiny, "filler-2")
    audit.close()

    assert audit.writer.emergency == emergency_path("run-a")
    (line,) = audit.writer.emergency.read_text().splitlines()
    gap = json.loads(line)
    assert gap["kind"] == "gap" and "sig" in gap and gap["run"] == "run-a"
    cancels = {r["params"]["clientOrderId"] for r in gap["records"] if r["kind"] == "exchange"}
    assert set(held) <= cancels
    records = _records(tiny)
    assert records[-1]["kind"] != "close"
    assert gap["seq"] == records[-1]["seq"] + 1  # it continues the chain where the log stops
    report = verify_tree(tiny / "logs", verifier=None)
    assert any("run-a: the log was not closed" in n for n in report.notes), report.notes


def test_each_open_log_keeps_a_reserve_removed_at_close_or_by_the_next_run(
    open_log: Any, logs: Path
) -> None:
    _, first = open_log("run-a")
    reserve = first.dir / RESERVE_NAME
    assert reserve.stat().st_blocks * 512 >= RESERVE_BYTES  # really allocated, not sparse
    first.close()
    assert not reserve.exists()
    # a run killed before its close leaves its reserve: the next run removes it
    reserve.write_bytes(b"\0" * 4096)
    _, second = open_log("run-b")
    deadline = time.monotonic() + 10
    while reserve.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not reserve.exists()
    assert (second.dir / RESERVE_NAME).exists()  # while its own stays
