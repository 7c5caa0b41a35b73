"""Where the signing key lives: the OS keyring, or 0600 files with one warning line."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import keyring
import pytest
from keyring.backends import chainer, fail, null

from perpbot.audit.keystore import (
    KEY_ENTRY,
    SERVICE,
    KeyStore,
    head_entry,
    head_file,
    key_file,
    public_key_file,
    usable_keyring,
)
from perpbot.audit.signing import fingerprint, parse_public_key, public_text
from perpbot.errors import RuntimeFailure


def test_key_lives_in_the_keyring_when_it_works(memory_keyring: Any, capsys: Any) -> None:
    store = KeyStore()
    assert store.in_keyring
    raw = store.public_raw(create=True)
    assert raw is not None and len(raw) == 32
    assert (SERVICE, KEY_ENTRY) in memory_keyring.entries
    assert not key_file().exists()
    assert parse_public_key(public_key_file().read_text()) == raw
    assert KeyStore().public_raw() == raw  # the same key next time
    assert capsys.readouterr().err == ""


@pytest.mark.usefixtures("no_keyring")
def test_without_a_keyring_the_key_is_a_0600_file_and_one_warning(capsys: Any) -> None:
    store = KeyStore()
    assert not store.in_keyring
    raw = store.public_raw(create=True)
    KeyStore().public_raw()
    assert stat.S_IMODE(key_file().stat().st_mode) == 0o600
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert str(key_file().parent) in err[0] and "anyone who can read them can forge" in err[0]
    assert KeyStore().public_raw() == raw
    store.write_head({"run": "r", "seq": 1})
    assert stat.S_IMODE(head_file().stat().st_mode) == 0o600
    assert [src for src, _ in KeyStore().read_heads()] == ["file"]


def test_a_file_key_moves_into_a_keyring_that_appeared(memory_keyring: Any, capsys: Any) -> None:
    keyring.set_keyring(fail.Keyring())
    raw = KeyStore().public_raw(create=True)
    assert key_file().exists()
    keyring.set_keyring(memory_keyring)
    assert KeyStore().public_raw() == raw
    assert not key_file().exists() and (SERVICE, KEY_ENTRY) in memory_keyring.entries
    assert "moved the audit signing key" in capsys.readouterr().err


def test_a_corrupt_keyring_entry_is_one_clear_error(memory_keyring: Any) -> None:
    memory_keyring.set_password(SERVICE, KEY_ENTRY, "not a key")
    with pytest.raises(RuntimeFailure, match='"perpbot/audit-signing-key" is not an audit'):
        KeyStore().private_key()


def test_a_failing_keyring_falls_back_to_files(memory_keyring: Any, capsys: Any) -> None:
    class Broken(type(memory_keyring)):  # type: ignore[misc]
        def get_password(self, service: str, username: str) -> str | None:
            raise keyring.errors.KeyringLocked("locked")

    keyring.set_keyring(Broken())
    store = KeyStore()
    assert not store.in_keyring
    store.public_raw(create=True)
    assert key_file().exists()
    assert "no usable OS keyring" in capsys.readouterr().err


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring()])
def test_fail_and_null_backends_are_not_usable(backend: Any) -> None:
    keyring.set_keyring(backend)
    assert usable_keyring() is None


def test_an_empty_chainer_is_not_usable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chainer.ChainerBackend, "backends", [])
    keyring.set_keyring(chainer.ChainerBackend())
    assert usable_keyring() is None


def test_heads_are_read_from_keyring_and_file(memory_keyring: Any) -> None:
    store = KeyStore()
    store.write_head({"run": "r", "seq": 3})
    assert json.loads(memory_keyring.entries[(SERVICE, head_entry())]) == {"run": "r", "seq": 3}
    assert [src for src, _ in store.read_heads()] == ["keyring", "file"]
    head_file().write_text("{not json")
    heads = dict(KeyStore().read_heads())
    assert "unreadable" in heads["file"]


def test_public_key_formats(tmp_path: Path) -> None:
    raw = KeyStore().public_raw(create=True)
    assert raw is not None
    from perpbot.audit.signing import public_pem

    text = public_text(raw)
    assert text.startswith("ed25519:")
    assert parse_public_key(text) == raw
    assert parse_public_key(text.removeprefix("ed25519:")) == raw
    pem = tmp_path / "key.pem"
    pem.write_text(public_pem(raw))
    assert parse_public_key(str(pem)) == raw
    assert fingerprint(raw).startswith("SHA256:")
    from perpbot.errors import BadInput

    with pytest.raises(BadInput, match="expected an Ed25519 public key"):
        parse_public_key("ed25519:AAAA")


def test_state_dirs_sharing_a_keyring_keep_their_own_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = KeyStore()
    raw = first.public_raw(create=True)
    first.write_head({"run": "in-first"})
    monkeypatch.setenv("PERPBOT_HOME", str(tmp_path / "other-home"))
    second = KeyStore()
    assert second.public_raw() == raw  # one signing key per user
    assert second.read_heads() == []  # but not the other state dir's chain head
    second.write_head({"run": "in-second"})
    assert dict(second.read_heads())["keyring"] == {"run": "in-second"}
