"""Tamper fuzz: a log from a real paper run, 600 random tamperings, every one detected.

`perpbot run strategies/grid.toml --duration 5` (rotating its log every 8 KB) makes the
first log; a second log, written in-process with the same key, continues its chain (and is
what "splice two logs" splices in). Each tampering is applied to an in-memory copy written
to a scratch folder and verified in-process, which keeps 600 cases to seconds.
"""

from __future__ import annotations

import collections
import json
import os
import random
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from keyring.backends import fail

from perpbot.audit.signing import Verifier, new_private_key, parse_public_key
from perpbot.audit.subscriber import attach_to_bus
from perpbot.audit.tree import verify_tree
from perpbot.config import AuditSection
from perpbot.events import Decision, EventBus, ExchangeCall
from tests.audit_support.tamper import TAMPERINGS, Snapshot
from tests.conftest import ROOT, run_cli

CASES = 600
# what each tampering may be reported as (the first bad record decides)
EXPECTED: dict[str, set[str]] = {
    "rollback": {"truncated"},
    "edit_field": {"modified", "signature invalid", "key mismatch"},
    "delete_line": {"deleted", "truncated"},
    "duplicate_line": {"inserted"},
    "swap_lines": {"reordered"},
    "insert_forged": {"inserted"},
    "truncate": {"truncated"},
    "delete_file": {"deleted", "truncated"},
    "swap_files": {"reordered"},
    "splice": {"inserted"},
    "rechain": {"signature invalid", "modified"},
    "resign": {"signature invalid", "key mismatch", "modified"},
}


@pytest.fixture(scope="module")
def paper_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("audit-fuzz-home")
    folder = tmp_path_factory.mktemp("strategy")
    text = (ROOT / "strategies" / "grid.toml").read_text()
    assert "[audit]" not in text
    shutil.copy(ROOT / "strategies" / "grid.py", folder / "grid.py")
    toml = folder / "grid.toml"
    toml.write_text(text + "\n[audit]\nrotate_mb = 0.008\n")
    result = run_cli("run", str(toml), "--duration", "5", "--json", env=env_for(home))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["audit"]["log"].startswith(str(home))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PERPBOT_HOME", str(home))
        mp.setattr("keyring.core._keyring_backend", fail.Keyring())
        second_log(home)
    return home


def env_for(home: Path) -> dict[str, str]:
    return {"PERPBOT_HOME": str(home), "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


def second_log(home: Path) -> None:
    """A second run's log (same state dir, same key): reads, orders and decisions."""
    bus = EventBus()
    audit = attach_to_bus(
        bus,
        run_id="second-run",
        profile=None,
        command="kill",
        settings=AuditSection(rotate_mb=0.004, checkpoint_every=16),
    )
    for i in range(60):
        if i % 9 == 0:
            bus.publish(Decision("kill", "act", "KILL_CANCELLED", f"cancelled order {i}"))
        bus.publish(
            ExchangeCall(
                request_id=bus.next_request_id(),
                method="cancel_order" if i % 6 == 0 else "fetch_open_orders",
                http_method="DELETE" if i % 6 == 0 else "GET",
                path="/fapi/v1/order" if i % 6 == 0 else "/fapi/v1/openOrders",
                params={"symbol": "BTC/USDT:USDT", "clientOrderId": f"pb-{i}"},
                status=200,
                ok=True,
                latency_ms=2.0,
            )
        )
    audit.close()


class CachedVerifier(Verifier):
    """The same checks, remembered: most signed lines are unchanged from case to case."""

    def __init__(self, raw: bytes) -> None:
        super().__init__(raw)
        self._seen: dict[tuple[bytes, bytes], bool] = {}

    def check(self, message: bytes, sig: bytes) -> bool:
        key = (message, sig)
        if key not in self._seen:
            self._seen[key] = super().check(message, sig)
        return self._seen[key]


def test_paper_runs_verify_with_the_cli(paper_home: Path) -> None:
    result = run_cli("log", "verify", "--accept-unanchored", "--json", env=env_for(paper_home))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["ok"] and report["runs"] == 2 and report["files"] >= 4, report
    assert report["records"] > 100


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """Where tampered copies are written: tmpfs when there is one (creating thousands of
    small files on a slow disk would dominate the test), else pytest's tmp_path."""
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        path = Path(tempfile.mkdtemp(prefix="perpbot-audit-fuzz-", dir=shm))
        yield path
        shutil.rmtree(path, ignore_errors=True)
    else:
        yield tmp_path


def test_every_tampering_is_detected(paper_home: Path, scratch: Path) -> None:
    logs = paper_home / "logs"
    verifier = CachedVerifier(
        parse_public_key((paper_home / "audit" / "signing-key.pub").read_text())
    )
    heads = [("file", json.loads((paper_home / "audit" / "head.json").read_text()))]
    original = Snapshot.load(logs)
    assert len(original.runs) == 2
    assert all(len(original.log_files(r)) >= 2 for r in original.runs)  # rotation happened
    attacker = new_private_key()
    rng = random.Random(20261125)
    seen: collections.Counter[tuple[str, str]] = collections.Counter()

    def verify(snap: Snapshot, name: str) -> Any:
        root = scratch / name
        snap.write(root)
        return verify_tree(root, verifier=verifier, heads=heads)

    for case in range(CASES):
        if case % 100 == 0:  # the untampered log always verifies
            clean = verify(original.copy(), f"clean-{case}")
            assert clean.ok, clean.to_dict()
        tamper = TAMPERINGS[case % len(TAMPERINGS)]
        snap = original.copy()
        what = tamper(snap, rng, other=original, attacker_key=attacker)
        report = verify(snap, f"case-{case}")
        assert not report.ok, f"case {case}: not detected: {what}"
        kind = report.damages[0].kind
        assert kind in EXPECTED[tamper.__name__], f"case {case}: {what} -> {report.damages[0]}"
        seen[(tamper.__name__, kind)] += 1
    assert {name for name, _ in seen} == set(EXPECTED)
    assert sum(seen.values()) == CASES
