"""Profiles in the keyring: one entry each plus an index; atomic writes; no secret in reprs."""

from __future__ import annotations

import json

import pytest

from perpbot.errors import BadInput, RuntimeFailure
from perpbot.keys import store
from tests.keys_support.backends import MemoryKeyring

KEY = "AKIDEXAMPLE0000000000wxyz"
SECRET = "s3cr3t-EXAMPLE-0000000000-qrst"


def test_save_load_list_remove(memory_keyring: MemoryKeyring) -> None:
    store.save_profile(store.new_profile("main", KEY, SECRET, "sim"))
    store.save_profile(store.new_profile("alt", KEY + "2", SECRET, "binanceusdm"))
    loaded = store.load_profile("main")
    assert (loaded.api_key, loaded.secret, loaded.exchange) == (KEY, SECRET, "sim")
    assert loaded.grant.scopes_for("run") == {"read"}
    assert loaded.created and loaded.updated
    # one entry per profile and an index entry, all under the service "perpbot"
    assert set(memory_keyring.data) == {
        ("perpbot", "profile:main"),
        ("perpbot", "profile:alt"),
        ("perpbot", "index"),
    }
    index = json.loads(memory_keyring.data[("perpbot", "index")])
    assert index["profiles"] == ["alt", "main"]
    found, missing = store.list_profiles()
    assert [p.name for p in found] == ["alt", "main"] and missing == []
    store.remove_profile("alt")
    assert [p.name for p in store.list_profiles()[0]] == ["main"]
    assert ("perpbot", "profile:alt") not in memory_keyring.data
    with pytest.raises(BadInput) as info:
        store.load_profile("alt")
    assert "perpbot keys add alt" in info.value.message
    with pytest.raises(BadInput):
        store.remove_profile("alt")


def test_failed_update_leaves_the_old_profile_intact(memory_keyring: MemoryKeyring) -> None:
    old = store.new_profile("main", KEY, SECRET, "sim")
    store.save_profile(old)
    wider = old.updated_with(grant=old.grant.allow("run", ["trade"]))
    memory_keyring.fail_set = 1
    with pytest.raises(RuntimeFailure) as info:
        store.save_profile(wider)
    assert info.value.code == "KEYS_BACKEND"
    assert KEY not in info.value.message and SECRET not in info.value.message
    assert store.load_profile("main").grant == old.grant
    memory_keyring.crash_set = 1  # an unexpected backend error: re-raised, still intact
    with pytest.raises(RuntimeError):
        store.save_profile(wider)
    assert store.load_profile("main").grant == old.grant


def test_new_profile_is_rolled_back_when_the_index_cannot_be_written(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = memory_keyring.set_password

    def refuse_index(service: str, username: str, password: str) -> None:
        if username == "index":
            memory_keyring.fail_set = 1
        original(service, username, password)

    monkeypatch.setattr(memory_keyring, "set_password", refuse_index)
    with pytest.raises(RuntimeFailure):
        store.save_profile(store.new_profile("main", KEY, SECRET, "sim"))
    assert memory_keyring.data == {}


def test_a_write_that_reads_back_wrong_is_undone(
    memory_keyring: MemoryKeyring, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = store.new_profile("main", KEY, SECRET, "sim")
    store.save_profile(old)
    original = memory_keyring.set_password
    calls: list[str] = []

    def truncate_once(service: str, username: str, password: str) -> None:
        calls.append(username)
        original(service, username, password[: len(password) // 2] if len(calls) == 1 else password)

    monkeypatch.setattr(memory_keyring, "set_password", truncate_once)
    with pytest.raises(RuntimeFailure, match="did not read back"):
        store.save_profile(old.updated_with(grant=old.grant.allow("run", ["cancel"])))
    monkeypatch.undo()
    assert store.load_profile("main") == old


def test_damaged_entry_and_bad_names(memory_keyring: MemoryKeyring) -> None:
    memory_keyring.data[("perpbot", "profile:bad")] = json.dumps({"version": 1, "api_key": KEY})
    with pytest.raises(RuntimeFailure) as info:
        store.load_profile("bad")
    assert info.value.code == "KEYS_CORRUPT" and "perpbot keys remove bad" in info.value.message
    assert KEY not in info.value.message
    for name in ("", "-x", "a b", "x" * 65, "../etc"):
        with pytest.raises(BadInput):
            store.check_name(name)


def test_repr_and_mask_never_show_secrets() -> None:
    p = store.new_profile("main", KEY, SECRET, "sim")
    assert KEY not in repr(p) and SECRET not in repr(p)
    assert p.masked_key == "****wxyz"
    assert store.mask("short") == "****"
