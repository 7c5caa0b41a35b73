"""`perpbot log verify` never claims more than it knows about the head of the chain.

Without an OS keyring (the headless default) nothing outside the state dir holds the head:
an attacker who truncates the newest run, deletes it, or rolls the whole state dir back to
an older valid copy leaves a log that verifies. verify says so and fails unless the user
accepts it (--accept-unanchored); a head exported with `perpbot log head` catches all three
(`verify --head HASH`), with or without the auditor's --public-key. An empty log never
verifies as intact.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest

from perpbot.audit.anchor import add_head_listener
from perpbot.audit.subscriber import attach_to_bus
from perpbot.config import AuditSection
from perpbot.events import Decision, EventBus, ExchangeCall
from tests.conftest import run_cli
from tests.keys_support.backends import ENV_FILE, FileKeyring, file_keyring_env

NO_KEYRING = {"PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}


@pytest.fixture
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    from keyring.backends import fail

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", NO_KEYRING["PYTHON_KEYRING_BACKEND"])
    previous = keyring.core._keyring_backend
    keyring.set_keyring(fail.Keyring())
    yield
    keyring.core._keyring_backend = previous


def make_run(run: str, n: int = 8) -> Path:
    """A closed run: reads and orders (each order followed by a signed checkpoint)."""
    bus = EventBus()
    audit = attach_to_bus(bus, run_id=run, profile=None, command="run", settings=AuditSection())
    for i in range(n):
        order = i % 3 == 1
        bus.publish(
            ExchangeCall(
                request_id=bus.next_request_id(),
                method="create_order" if order else "fetch_ticker",
                http_method="POST" if order else "GET",
                path="/fapi/v1/order" if order else "/fapi/v1/ticker/price",
                params={"symbol": "BTC/USDT:USDT", "amount": 0.001},
                status=200,
                ok=True,
                latency_ms=2.0,
            )
        )
    audit.close("duration")
    return audit.dir


def verify(*args: str, env: dict[str, str] = NO_KEYRING) -> Any:
    return run_cli("log", "verify", *args, env=env)


def exported_head(env: dict[str, str] = NO_KEYRING) -> str:
    r = run_cli("log", "head", env=env)
    assert r.returncode == 0, r.stderr
    first = r.stdout.splitlines()[0]
    assert first.startswith("head ")
    return first.split()[1]


def errors(r: Any) -> list[str]:
    return [x for x in r.stderr.splitlines() if x.startswith("perpbot: error:")]


@pytest.mark.usefixtures("no_keyring")
def test_without_a_keyring_verify_says_unanchored_and_fails_unless_accepted() -> None:
    make_run("run-a")
    make_run("run-b")
    r = verify()
    assert r.returncode == 1, r.stdout + r.stderr
    assert "UNANCHORED:" in r.stdout and "rolling the whole log back" in r.stdout
    assert "intact: 2 run(s)" in r.stdout  # the chain itself is fine, and it says so
    assert len(errors(r)) == 1 and "not anchored" in errors(r)[0]
    accepted = verify("--accept-unanchored")
    assert accepted.returncode == 0 and "UNANCHORED:" in accepted.stdout
    doc = json.loads(verify("--json", "--accept-unanchored").stdout)
    assert doc["anchored"] is False and doc["anchor"] is None


@pytest.mark.usefixtures("no_keyring")
def test_an_exported_head_catches_truncation_deletion_and_rollback(
    state_home: Path, tmp_path: Path
) -> None:
    make_run("run-a")
    backup = tmp_path / "backup"
    shutil.copytree(state_home, backup)  # an older, perfectly valid copy of the state dir
    b = make_run("run-b")
    head = exported_head()
    public = run_cli("log", "key", env=NO_KEYRING).stdout.splitlines()[0]

    ok = verify("--head", head)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "anchored: by --head" in ok.stdout and "run run-b" in ok.stdout
    assert verify("--head", head, "--public-key", public).returncode == 0

    def attack_and_check(name: str) -> None:
        accepted = verify("--accept-unanchored")
        assert accepted.returncode == 0, f"{name}: {accepted.stdout}"  # the limit, shown
        plain = verify("--public-key", public)
        assert plain.returncode == 1 and "UNANCHORED" in plain.stdout, name
        caught = verify("--head", head, "--public-key", public)
        assert caught.returncode == 1, f"{name}: {caught.stdout}"
        assert "the exported head" in caught.stdout and "not in the log" in caught.stdout
        assert len(errors(caught)) == 1 and "Traceback" not in caught.stderr

    # 1. the newest run cut back to an earlier signed checkpoint, its copies removed
    log = b / "audit-0001.jsonl"
    original = log.read_bytes()
    lines = original.split(b"\n")[:-1]
    cut = max(i for i, x in enumerate(lines[:-2]) if b'"kind":"checkpoint"' in x)
    log.write_bytes(b"".join(x + b"\n" for x in lines[: cut + 1]))
    (b / "checkpoint.json").unlink()
    (state_home / "audit" / "head.json").unlink()
    attack_and_check("truncated")

    # 2. the newest run deleted, the head file put back to the older run's
    shutil.rmtree(b)
    shutil.copy(backup / "audit" / "head.json", state_home / "audit" / "head.json")
    attack_and_check("deleted")

    # 3. the whole state dir rolled back to the older valid copy
    shutil.rmtree(state_home)
    shutil.copytree(backup, state_home)
    attack_and_check("rolled back")


@pytest.mark.usefixtures("no_keyring")
def test_an_empty_log_never_verifies(state_home: Path, tmp_path: Path) -> None:
    for args in ([], ["--accept-unanchored"], ["--head", "ab" * 32]):
        r = verify(*args)
        assert r.returncode == 1, r.stdout
        assert "intact:" not in r.stdout and "empty: 0 runs" in r.stdout
    empty = tmp_path / "copied-logs"
    empty.mkdir()
    r = verify(str(empty), "--accept-unanchored")
    assert r.returncode == 1 and "an empty log never verifies as intact" in r.stderr
    head = run_cli("log", "head", env=NO_KEYRING)
    assert head.returncode == 1 and "no chain head yet" in head.stderr


@pytest.mark.usefixtures("no_keyring")
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--head", "abc"], "--head: got 'abc', expected the 64-hex-digit hash"),
        (["--head", "ab" * 32, "--run", "run-a"], "--head checks the whole log"),
    ],
)
def test_head_bad_input_is_one_line_exit_2(args: list[str], message: str) -> None:
    make_run("run-a")
    r = verify(*args)
    assert r.returncode == 2 and len(errors(r)) == 1 and message in errors(r)[0], r.stderr


def test_head_prints_json_and_the_keyring_anchors_the_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = file_keyring_env(tmp_path / "keyring.json")
    monkeypatch.setenv(ENV_FILE, env[ENV_FILE])
    previous = keyring.core._keyring_backend
    keyring.set_keyring(FileKeyring())
    try:
        make_run("run-k")
    finally:
        keyring.core._keyring_backend = previous
    r = verify(env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "anchored: by the OS keyring's copy of the head (run run-k seq" in r.stdout
    doc = json.loads(run_cli("log", "head", "--json", env=env).stdout)
    assert doc["run"] == "run-k" and len(doc["hash"]) == 64 and doc["sig"]
    assert verify("--head", doc["hash"], env=env).returncode == 0


@pytest.mark.usefixtures("no_keyring")
def test_head_listeners_receive_each_runs_heads_for_sending_elsewhere() -> None:
    got: list[tuple[dict[str, Any], bool]] = []
    remove = add_head_listener(lambda head, final: got.append((head, final)), every_s=3600)
    try:
        bus = EventBus()
        audit = attach_to_bus(
            bus,
            run_id="run-l",
            profile=None,
            command="run",
            settings=AuditSection(checkpoint_interval_s=0.01),
        )
        for i in range(3):
            bus.publish(Decision("kill", "trip", "KILL_TEST", f"trip {i}"))  # signed each
            audit.writer.flush_head()  # what the timer thread does
        audit.close()
    finally:
        remove()
    finals = [h for h, final in got if final]
    assert len(finals) == 2  # the open and the close, whatever the throttle
    assert all(not f for _, f in got[1:-1]) and len(got) <= 3  # throttled to every_s
    closing = finals[-1]
    assert closing["run"] == "run-l" and closing["hash"] == exported_head()


def test_with_a_keyring_verifying_one_older_run_names_the_anchor_it_did_not_compare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = file_keyring_env(tmp_path / "keyring.json")
    monkeypatch.setenv(ENV_FILE, env[ENV_FILE])
    previous = keyring.core._keyring_backend
    keyring.set_keyring(FileKeyring())
    try:
        make_run("run-1")
        make_run("run-2")
    finally:
        keyring.core._keyring_backend = previous
    r = verify("--run", "run-1", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "outside the runs verified here: verify the whole log" in r.stdout
    whole = verify(env=env)
    assert whole.returncode == 0 and "(run run-2 seq" in whole.stdout
