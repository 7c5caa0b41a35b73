"""Disk: closed log files are compressed and read back transparently; `perpbot log prune`
deletes old runs while the rest of the chain stays verifiable from a signed record of what
was pruned."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest

from perpbot.audit.keystore import KeyStore
from perpbot.audit.signing import Verifier
from perpbot.audit.subscriber import AuditLogger, attach_to_bus
from perpbot.audit.tree import verify_tree
from perpbot.config import AuditSection
from perpbot.events import Decision, EventBus, ExchangeCall
from perpbot.report.signedlog import read_signed_log
from tests.conftest import run_cli

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from keyring.backends import fail

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", NO_KEYRING["PYTHON_KEYRING_BACKEND"])
    previous = keyring.core._keyring_backend
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.core._keyring_backend = previous


def make_run(run: str, n: int = 40, **settings: Any) -> Path:
    return closed_run(run, n, **settings).dir


def closed_run(run: str, n: int = 40, **settings: Any) -> AuditLogger:
    bus = EventBus()
    audit = attach_to_bus(
        bus, run_id=run, profile=None, command="run", settings=AuditSection(**settings)
    )
    for i in range(n):
        if i % 9 == 4:
            bus.publish(Decision("risk", "reject", "RISK_MAX_NOTIONAL", f"order {i} too big"))
        else:
            bus.publish(
                ExchangeCall(
                    request_id=bus.next_request_id(), method="fetch_ticker", http_method="GET",
                    path="/fapi/v1/ticker/price", params={"symbol": "BTCUSDT", "limit": i},
                    status=200, ok=True, latency_ms=1.0,
                    rate_headers={"x-mbx-used-weight-1m": str(i)},
                )
            )  # fmt: skip
    audit.close("duration")
    return audit


def cli(*args: str) -> Any:
    return run_cli(*args, env=NO_KEYRING)


def age(folder: Path, days: float) -> None:
    past = time.time() - days * 86400
    for f in folder.iterdir():
        os.utime(f, (past, past))


def test_compressed_files_read_back_transparently(state_home: Path) -> None:
    a = make_run("run-a", n=60, rotate_mb=0.002)  # ~2 KB files: several rotations
    make_run("run-b", n=10)
    assert len(list(a.glob("audit-*.jsonl"))) >= 3
    before = {
        "show": cli("log", "show", "--json", "--run", "run-a").stdout,
        "tail": cli("log", "tail", "-n", "5", "--run", "run-a").stdout,
        "verify": json.loads(cli("log", "verify", "--accept-unanchored", "--json").stdout),
        "report": read_signed_log("run-a", []),
    }
    plain = sum(f.stat().st_size for f in a.glob("audit-*.jsonl"))

    r = cli("log", "prune", "--keep", "100")
    assert r.returncode == 0, r.stderr
    assert "nothing to prune" in r.stdout and "compressed" in r.stdout
    assert not list(a.glob("audit-*.jsonl")) and len(list(a.glob("audit-*.jsonl.gz"))) >= 3
    packed = sum(f.stat().st_size for f in a.glob("audit-*.jsonl.gz"))
    assert packed < plain / 2

    assert cli("log", "show", "--json", "--run", "run-a").stdout == before["show"]
    assert cli("log", "tail", "-n", "5", "--run", "run-a").stdout == before["tail"]
    assert read_signed_log("run-a", []) == before["report"]
    after = json.loads(cli("log", "verify", "--accept-unanchored", "--json").stdout)
    assert after["ok"] and after["records"] == before["verify"]["records"] + 2  # + prune run

    # tampering inside a compressed file is found like in a plain one
    target = sorted(a.glob("audit-*.jsonl.gz"))[1]
    lines = gzip.decompress(target.read_bytes()).split(b"\n")
    lines[2] = lines[2].replace(b'"ok":true', b'"ok":false')
    target.write_bytes(gzip.compress(b"\n".join(lines)))
    bad = cli("log", "verify", "--accept-unanchored")
    assert bad.returncode == 1
    assert f"DAMAGED run-a/{target.name} line 3" in bad.stdout and "modified" in bad.stdout
    target.write_bytes(b"\x1f\x8b garbage")  # no longer gzip at all
    bad = cli("log", "verify", "--accept-unanchored")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "compressed log file is damaged" in bad.stdout


def test_a_new_run_compresses_old_closed_runs_off_the_request_path(logs_root: Path) -> None:
    old = make_run("run-old", n=20)
    age(old, 1)
    new = closed_run("run-new", n=5)
    assert new.writer.wait_compressed(timeout=30)  # its open handed run-old to a thread
    assert list(old.glob("audit-*.jsonl.gz")) and not list(old.glob("audit-*.jsonl"))
    store = KeyStore()
    report = verify_tree(logs_root, verifier=Verifier(store.public_raw() or b""))
    assert report.ok, report.to_dict()


@pytest.fixture
def logs_root(state_home: Path) -> Path:
    return state_home / "logs"


def test_prune_by_age_and_by_count_keeps_the_chain_verifiable(state_home: Path) -> None:
    runs = [make_run(f"r{i}", n=8) for i in range(5)]
    age(runs[0], 120)
    age(runs[1], 100)
    r = cli("log", "prune", "--keep", "90d")
    assert r.returncode == 0, r.stderr
    assert "pruned 2 run(s): r0, r1" in r.stdout
    assert not runs[0].exists() and not runs[1].exists() and runs[2].exists()
    ok = cli("log", "verify", "--accept-unanchored")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    prune_run = next(p.name for p in (state_home / "logs").iterdir() if p.name.startswith("prune"))
    assert "pruned: pruned before run r2: it continues run r1 seq" in ok.stdout
    assert f"anchored by the signed checkpoint of what was pruned in run {prune_run}" in ok.stdout

    r = cli("log", "prune", "--keep", "2", "--json")
    doc = json.loads(r.stdout)
    assert r.returncode == 0 and {p["run"] for p in doc["pruned"]} >= {"r2", "r3"}
    kept = sorted(p.name for p in (state_home / "logs").iterdir())
    assert "r2" not in kept and "r3" not in kept
    again = cli("log", "verify", "--accept-unanchored", "--json")
    assert again.returncode == 0, again.stdout
    assert json.loads(again.stdout)["pruned"]

    # deleting a run by hand is not pruning: no signed record says so
    victim = state_home / "logs" / "r4"
    assert victim.exists()  # one of the 2 newest
    shutil.rmtree(victim)
    bad = cli("log", "verify", "--accept-unanchored")
    assert bad.returncode == 1 and "deleted" in bad.stdout


@pytest.mark.parametrize("keep", ["0", "abc", "-5d", "0d", "1e9"])
def test_prune_bad_keep_is_one_line_exit_2(keep: str) -> None:
    make_run("r0", n=3)
    r = cli("log", "prune", "--keep", keep)
    errors = [x for x in r.stderr.splitlines() if x.startswith("perpbot: error:")]
    assert r.returncode == 2 and len(errors) == 1 and "--keep: got" in errors[0], r.stderr
