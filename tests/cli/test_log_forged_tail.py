"""Forged records appended to a SIGKILLed bot's unsigned tail are never vouched for.

A bot killed between checkpoints leaves chained but unsigned records; anyone who can write
the state dir can append more, correctly chained. The next run's signed first record used
to seal them as the dead run's own. Now it bounds them and labels them "recovered,
unverified, N records", `perpbot log verify` flags every order record no checkpoint ever
covered (exit 1), and anything appended after the recovery is damage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from perpbot.audit.canonical import encode, line_hash
from tests.conftest import ROOT, run_cli

ENV = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
GRID = str(ROOT / "strategies" / "grid.toml")


def _wait_for_orders(logs: Path, proc: subprocess.Popen[str], timeout: float = 60) -> Path:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for path in logs.glob("*/audit-0001.jsonl"):
            if path.read_bytes().count(b'"method":"create_order"') >= 2:
                return path
        time.sleep(0.1)
    raise AssertionError("the bot logged no orders in time")


def forge(log: Path, n: int) -> list[int]:
    """Append ``n`` correctly chained order records; returns their seqs."""
    data = log.read_bytes()
    data = data[: data.rfind(b"\n") + 1]  # drop a torn last line, as a forger would
    last = data.split(b"\n")[-2]
    seq, prev = json.loads(last)["seq"] + 1, line_hash(last)
    run = log.parent.name
    seqs = []
    for i in range(n):
        body = {
            "kind": "exchange", "req": 90000 + i, "ts": time.time(), "run": run,
            "command": "run", "method": "create_order", "http": "POST",
            "path": "/fapi/v1/order", "ok": True, "status": 200,
            "params": {"symbol": "BTC/USDT:USDT", "side": "sell", "type": "market",
                       "amount": 5.0},
        }  # fmt: skip
        line = encode(seq, prev, body)
        data += line + b"\n"
        seqs.append(seq)
        seq, prev = seq + 1, line_hash(line)
    log.write_bytes(data)
    return seqs


def verify_json() -> tuple[Any, dict[str, Any]]:
    r = run_cli("log", "verify", "--accept-unanchored", "--json", env=ENV)
    return r, json.loads(r.stdout)


def flagged(report: dict[str, Any], run: str) -> set[int]:
    return {o["seq"] for u in report["unverified"] if u["run"] == run for o in u["orders"]}


def test_forged_orders_after_a_sigkill_are_flagged_not_sealed(state_home: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "perpbot", "run", GRID, "--plain"],
        env={**os.environ, **ENV, "PERPBOT_HOME": str(state_home)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        log = _wait_for_orders(state_home / "logs", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    dead = log.parent.name
    forged = forge(log, 3)

    # nobody has recovered the tail yet: the forged orders are flagged already
    r, report = verify_json()
    assert r.returncode == 1, r.stdout
    assert set(forged) <= flagged(report, dead)
    text = run_cli("log", "verify", "--accept-unanchored", env=ENV)
    assert text.returncode == 1
    for seq in forged:
        assert f"UNVERIFIED {dead}/audit-0001.jsonl" in text.stdout
        assert f"(seq {seq}): create_order POST /fapi/v1/order" in text.stdout
    assert "order-related record(s) no signed checkpoint ever covered" in text.stderr

    # the next run bounds and labels the tail; it never vouches for it
    again = run_cli("run", GRID, "--duration", "1", "--json", env=ENV)
    assert again.returncode == 0, again.stderr
    new_dir = Path(json.loads(again.stdout)["audit"]["log"])
    opened = json.loads((new_dir / "audit-0001.jsonl").read_bytes().split(b"\n")[0])
    recovered = opened["recovered"]
    assert recovered["verified"] is False and recovered["unsigned"] >= 3
    assert recovered["label"] == f"recovered, unverified, {recovered['unsigned']} records"
    assert opened["link"] == {"run": dead, "seq": forged[-1], "file": "audit-0001.jsonl"}
    assert "kept as recovered, unverified" in again.stderr

    r, report = verify_json()
    assert r.returncode == 1, r.stdout
    assert set(forged) <= flagged(report, dead)
    (entry,) = [u for u in report["unverified"] if u["run"] == dead]
    assert entry["recovered_by"] == new_dir.name and entry["last_seq"] == forged[-1]
    assert report["damage"] == []  # the chain itself is intact: the records are unverified

    # appending after the recovery is damage, not another unverified record
    more = forge(log, 1)
    r, report = verify_json()
    assert r.returncode == 1
    (damage,) = [d for d in report["damage"] if d["run"] == dead]
    assert damage["kind"] == "inserted" and damage["seq"] == more[0]
    assert f"after run {new_dir.name} recovered" in damage["detail"]
