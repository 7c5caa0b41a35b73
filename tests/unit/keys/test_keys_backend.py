"""No usable keyring: a clear error naming the fix, never a silent plaintext fallback."""

from __future__ import annotations

import pytest
from keyring.backend import KeyringBackend
from keyring.backends import fail, null

from perpbot.errors import BadInput, RuntimeFailure
from perpbot.keys import store
from perpbot.keys.backend import usable_keyring
from tests.keys_support.backends import MemoryKeyring, installed


class PlaintextKeyring(KeyringBackend):
    """Stands in for keyrings.alt.file.PlaintextKeyring (same module and class name)."""

    priority = -1  # type: ignore[assignment]

    def get_password(self, service: str, username: str) -> str | None:
        return None

    def set_password(self, service: str, username: str, password: str) -> None:
        raise AssertionError("perpbot must not write to a plaintext backend it did not choose")

    def delete_password(self, service: str, username: str) -> None:
        return None


PlaintextKeyring.__module__ = "keyrings.alt.file"


@pytest.mark.parametrize("backend", [fail.Keyring(), null.Keyring()])
def test_fail_and_null_backends_are_refused_with_the_fix(backend: KeyringBackend) -> None:
    with installed(backend), pytest.raises(RuntimeFailure) as info:
        store.load_profile("main")
    msg = info.value.message
    assert info.value.code == "KEYS_NO_BACKEND"
    assert "gnome-keyring" in msg and "PYTHON_KEYRING_BACKEND" in msg and "plaintext" in msg


def test_plaintext_backend_only_when_chosen_explicitly(monkeypatch: pytest.MonkeyPatch) -> None:
    with installed(PlaintextKeyring()):
        with pytest.raises(RuntimeFailure) as info:
            usable_keyring()
        assert info.value.code == "KEYS_PLAINTEXT_BACKEND"
        monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
        assert isinstance(usable_keyring(), PlaintextKeyring)


def test_unloadable_backend_env_is_bad_input(monkeypatch: pytest.MonkeyPatch) -> None:
    import keyring.core

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "no.such.Backend")
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    with pytest.raises(BadInput) as info:
        usable_keyring()
    assert "PYTHON_KEYRING_BACKEND='no.such.Backend'" in info.value.message


def test_memory_backend_is_usable() -> None:
    assert isinstance(usable_keyring(), MemoryKeyring)
