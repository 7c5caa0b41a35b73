"""`perpbot alerts` as a user meets it: the URL never on argv or in any output."""

from __future__ import annotations

import json
from pathlib import Path

from perpbot.alerts.outbox import deliver_outbox, post
from tests.conftest import run_cli
from tests.keys_support.backends import file_keyring_env
from tests.ops.receivers import WebhookReceiver


def test_add_list_test_remove_without_leaking_the_url(tmp_path: Path, state_home: Path) -> None:
    env = file_keyring_env(tmp_path / "keyring.json")
    with WebhookReceiver() as good, WebhookReceiver(status=500) as broken:
        good_url = good.url("s3cretWebhookPath")
        bad_url = broken.url("an0therS3cret")
        add = run_cli("alerts", "add", "phone", env=env, input=good_url + "\n")
        assert add.returncode == 0, add.stderr
        assert run_cli("alerts", "add", "ops", env=env, input=bad_url + "\n").returncode == 0
        listed = run_cli("alerts", "list", env=env)
        test = run_cli("alerts", "test", env=env)
        only = run_cli("alerts", "test", "--destination", "phone", env=env)
    assert listed.returncode == 0 and listed.stdout.splitlines()[:2] == ["ops", "phone"]
    assert test.returncode == 1, test.stdout + test.stderr
    lines = test.stdout.splitlines()
    assert any(line.startswith("phone: ok") for line in lines)
    assert any(line.startswith("ops: FAILED") for line in lines)
    assert only.returncode == 0 and only.stdout.startswith("phone: ok")
    assert len(good.bodies) == 2 and "ALERT_TEST" in good.bodies[0]["title"]
    everything = (
        "".join(r.stdout + r.stderr for r in (add, listed, test, only))
        + (state_home / "alerts.toml").read_text()
    )
    assert "s3cretWebhookPath" not in everything and "an0therS3cret" not in everything
    assert "s3cretWebhookPath" in (tmp_path / "keyring.json").read_text()  # in the keyring

    removed = run_cli("alerts", "remove", "ops", env=env)
    assert removed.returncode == 0
    assert run_cli("alerts", "list", env=env).stdout.splitlines()[0] == "phone"
    assert "an0therS3cret" not in (tmp_path / "keyring.json").read_text()


def test_bad_input_is_one_line_exit_2(tmp_path: Path) -> None:
    env = file_keyring_env(tmp_path / "keyring.json")
    bad = run_cli("alerts", "add", "phone", env=env, input="not a url at all\n")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "not an Apprise URL" in bad.stderr and "not a url at all" not in bad.stderr
    name = run_cli("alerts", "add", "bad name!", env=env, input="json://127.0.0.1/x\n")
    assert name.returncode == 2 and len(name.stderr.strip().splitlines()) == 1
    missing = run_cli("alerts", "test", env=env)
    assert missing.returncode == 2 and "perpbot alerts add" in missing.stderr


def test_outbox_delivers_a_command_alert(
    tmp_path: Path, state_home: Path, memory_keyring: object
) -> None:
    """What `perpbot kill` calls after writing the sentinel: post() returns at once, the
    detached sender delivers (here run in-process to assert on it)."""
    from perpbot.alerts.destinations import add_destination

    with WebhookReceiver() as hook:
        add_destination("hook", hook.url())
        path = post(
            "KILL_SET", "critical", "kill switch set to cancel for all by alice", spawn=False
        )
        assert path is not None and json.loads(path.read_text())["code"] == "KILL_SET"
        assert deliver_outbox() == (1, 0)
    assert len(hook.bodies) == 1 and "KILL_SET" in hook.bodies[0]["title"]
    assert "by alice" in hook.bodies[0]["message"]
    assert not list((state_home / "alerts" / "outbox").glob("*.json"))


def test_post_spawns_a_detached_sender(
    tmp_path: Path, state_home: Path, monkeypatch: object
) -> None:
    import time

    env = file_keyring_env(tmp_path / "keyring.json")
    for k, v in env.items():
        monkeypatch.setenv(k, v)  # type: ignore[attr-defined]
    assert post("KILL_SET", "critical", "no config yet") is None  # nothing configured: no-op
    with WebhookReceiver() as hook:
        assert run_cli("alerts", "add", "hook", input=hook.url() + "\n").returncode == 0
        t0 = time.perf_counter()
        assert post("KILL_CLEARED", "warning", "kill switch cleared by bob") is not None
        took = time.perf_counter() - t0
        hook.wait_for(1, timeout=60)
    print(f"post() returned in {took * 1000:.1f} ms")
    assert took < 1.0
    assert "KILL_CLEARED" in hook.bodies[0]["title"] and "by bob" in hook.bodies[0]["message"]


def test_notify_sends_now_and_fails_loudly(tmp_path: Path, state_home: Path) -> None:
    env = file_keyring_env(tmp_path / "keyring.json")
    with WebhookReceiver() as hook, WebhookReceiver(status=500) as broken:
        assert run_cli("alerts", "add", "hook", env=env, input=hook.url() + "\n").returncode == 0
        ok = run_cli("alerts", "notify", "RUN_CRASHED", "perpbot@grid exited 1", env=env)
        assert ok.returncode == 0, ok.stderr
        assert len(hook.bodies) == 1 and "perpbot@grid exited 1" in hook.bodies[0]["message"]
        add = run_cli("alerts", "add", "broken", env=env, input=broken.url() + "\n")
        assert add.returncode == 0
        bad = run_cli("alerts", "notify", "RUN_CRASHED", "again", env=env)
    assert bad.returncode == 1 and "failed" in bad.stderr
    assert "RUN_CRASHED" in (state_home / "alerts" / "failed.jsonl").read_text()
