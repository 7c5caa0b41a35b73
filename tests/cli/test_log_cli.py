"""`perpbot log verify|show|tail|key` as a user meets them: subprocesses and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from perpbot.audit.subscriber import AuditLogger, attach_to_bus
from perpbot.config import AuditSection
from perpbot.events import Decision, EventBus, ExchangeCall
from tests.conftest import ROOT, run_cli

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process and its subprocesses both use the file fallback (same key files)."""
    from keyring.backends import fail

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", NO_KEYRING["PYTHON_KEYRING_BACKEND"])
    monkeypatch.setattr("keyring.core._keyring_backend", fail.Keyring())


def events(bus: EventBus, n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        if i % 4 == 3:
            bus.publish(Decision("risk", "reject", "RISK_MAX_NOTIONAL", f"order {i} too large"))
        else:
            bus.publish(
                ExchangeCall(
                    request_id=bus.next_request_id(),
                    method="create_order" if i % 4 == 1 else "fetch_ticker",
                    http_method="POST" if i % 4 == 1 else "GET",
                    path="/fapi/v1/order" if i % 4 == 1 else "/fapi/v1/ticker/price",
                    params={"symbol": "BTC/USDT:USDT", "amount": 0.001 * (i + 1)},
                    status=200,
                    ok=True,
                    latency_ms=3.0,
                )
            )


def make_run(run: str, n: int = 12, close: bool = True) -> tuple[EventBus, AuditLogger]:
    bus = EventBus()
    audit = attach_to_bus(bus, run_id=run, profile=None, command="run", settings=AuditSection())
    events(bus, n)
    if close:
        audit.close("duration")
    return bus, audit


def test_key_prints_the_public_key_and_warns_once_without_a_keyring() -> None:
    r = run_cli("log", "key", env=NO_KEYRING)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("ed25519:") and out[1].startswith("fingerprint SHA256:")
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "anyone who can read them can forge log records" in err[0]
    again = run_cli("log", "key", "--json", env=NO_KEYRING)
    doc = json.loads(again.stdout)
    assert doc["public_key"] == out[0] and doc["stored_in"] == "file"
    pem = run_cli("log", "key", "--pem", env=NO_KEYRING)
    assert pem.stdout.startswith("-----BEGIN PUBLIC KEY-----")


def test_verify_exit_codes_and_the_first_bad_record(state_home: Path, tmp_path: Path) -> None:
    make_run("run-a")
    _, b = make_run("run-b")
    ok = run_cli("log", "verify", "--accept-unanchored", env=NO_KEYRING)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "intact: 2 run(s)" in ok.stdout
    assert (
        run_cli("log", "verify", "--accept-unanchored", "--run", "run-b", env=NO_KEYRING).returncode
        == 0
    )
    assert (
        run_cli(
            "log", "verify", "--accept-unanchored", str(b.dir / "audit-0001.jsonl"), env=NO_KEYRING
        ).returncode
        == 0
    )

    path = b.dir / "audit-0001.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4].replace(b'"amount":0.003', b'"amount":0.3')
    assert lines[4] != path.read_bytes().split(b"\n")[4]
    path.write_bytes(b"\n".join(lines))
    bad = run_cli("log", "verify", env=NO_KEYRING)
    assert bad.returncode == 1
    assert "DAMAGED run-b/audit-0001.jsonl line 5 (seq 4): modified" in bad.stdout
    err = [x for x in bad.stderr.splitlines() if x.startswith("perpbot: error:")]
    assert len(err) == 1 and "audit log damaged: run-b/audit-0001.jsonl line 5" in err[0]
    assert "Traceback" not in bad.stderr
    as_json = json.loads(run_cli("log", "verify", "--json", env=NO_KEYRING).stdout)
    assert as_json["ok"] is False and as_json["damage"][0]["kind"] == "modified"
    assert (
        run_cli("log", "verify", "--accept-unanchored", "--run", "run-a", env=NO_KEYRING).returncode
        == 0
    )


def test_verify_with_an_auditors_key() -> None:
    make_run("run-a")
    public = run_cli("log", "key", env=NO_KEYRING).stdout.splitlines()[0]
    assert (
        run_cli(
            "log", "verify", "--accept-unanchored", "--public-key", public, env=NO_KEYRING
        ).returncode
        == 0
    )
    other = "ed25519:" + "A" * 43 + "="
    bad = run_cli("log", "verify", "--public-key", other, env=NO_KEYRING)
    assert bad.returncode == 1 and "key mismatch" in bad.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--run", "nope"], "--run: got 'nope'"),
        (["--public-key", "ed25519:short"], "--public-key: got 'ed25519:short'"),
        ([".", "--run", "run-a"], "give either PATH or --run"),
    ],
)
def test_verify_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    make_run("run-a")
    r = run_cli("log", "verify", *args, env=NO_KEYRING)
    assert r.returncode == 2, r.stdout + r.stderr
    errors = [x for x in r.stderr.splitlines() if x.startswith("perpbot: error:")]
    assert len(errors) == 1 and message in errors[0]


def test_show_table_json_decisions_and_since() -> None:
    make_run("run-a", n=12)
    table = run_cli("log", "show", env=NO_KEYRING)
    assert table.returncode == 0, table.stderr
    assert "create_order POST /fapi/v1/order" in table.stdout
    assert "[risk] RISK_MAX_NOTIONAL: order 3 too large -> reject" in table.stdout
    records = [
        json.loads(x) for x in run_cli("log", "show", "--json", env=NO_KEYRING).stdout.splitlines()
    ]
    assert records[0]["kind"] == "open" and records[-1]["kind"] == "close"
    decisions = run_cli("log", "show", "--decisions", "--json", "--run", "run-a", env=NO_KEYRING)
    kinds = {json.loads(x)["kind"] for x in decisions.stdout.splitlines()}
    assert kinds == {"decision"}
    future = run_cli("log", "show", "--since", str(time.time() + 3600), "--json", env=NO_KEYRING)
    assert future.returncode == 0 and future.stdout == ""
    bad = run_cli("log", "show", "--since", "soon", env=NO_KEYRING)
    assert bad.returncode == 2 and "--since: got 'soon'" in bad.stderr


def test_show_and_tail_without_logs_say_so() -> None:
    r = run_cli("log", "show", env=NO_KEYRING)
    assert r.returncode == 2 and "no audit logs" in r.stderr


def test_tail_last_records() -> None:
    make_run("run-a", n=12)
    r = run_cli("log", "tail", "-n", "3", env=NO_KEYRING)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 3 and "close (duration)" in lines[-1]


def test_tail_follow_a_running_bot(state_home: Path) -> None:
    bus, audit = make_run("run-live", n=4, close=False)
    proc = subprocess.Popen(
        [sys.executable, "-m", "perpbot", "log", "tail", "-f", "-n", "2", "--json"],
        env={**os.environ, **NO_KEYRING, "PERPBOT_HOME": str(state_home)},
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # the follower printed the last 2 records: it is following the file now
        first = [proc.stdout.readline(), proc.stdout.readline()]
        events(bus, 6, start=100)
        audit.close("interrupted")
        out, err = proc.communicate(timeout=60)
        out = "".join(first) + out
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    recs: list[dict[str, Any]] = [json.loads(x) for x in out.splitlines()]
    assert recs[-1]["kind"] == "close" and recs[-1]["reason"] == "interrupted"
    seqs = [r["seq"] for r in recs]
    assert seqs == list(range(seqs[0], seqs[-1] + 1))  # nothing skipped or repeated
    assert any(r.get("req") and r["req"] > 4 for r in recs)  # records written while following
