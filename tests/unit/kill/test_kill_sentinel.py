"""The KILL file: entries, levels, scopes, clearing, history, and failing closed."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from perpbot.kill.sentinel import (
    KillEntry,
    SentinelWatcher,
    clear_sentinel,
    new_entry,
    read_history,
    read_sentinel,
    scope_matches,
    write_sentinel,
)


def test_no_file_no_switch(state_home: Path) -> None:
    assert read_sentinel() is None
    assert SentinelWatcher().poll() is None


def test_written_atomically_with_level_reason_who_and_time(state_home: Path) -> None:
    entry = new_entry("flatten", "exchange outage", scope="profile:main")
    write_sentinel(entry)
    doc = json.loads((state_home / "KILL").read_text())
    assert doc["level"] == "flatten" and doc["reason"] == "exchange outage"
    assert doc["scope"] == "profile:main" and doc["pid"] == os.getpid()
    assert doc["who"] == entry.who and "@" in entry.who
    assert [p.name for p in state_home.iterdir() if p.name.startswith(".KILL")] == []
    got = read_sentinel()
    assert got is not None and got.entries == (entry,)


@pytest.mark.parametrize(
    ("scope", "profile", "run_id", "strategy", "expected"),
    [
        ("all", None, "r1", "grid", True),
        ("profile:main", "main", "r1", "grid", True),
        ("profile:main", "other", "r1", "grid", False),
        ("profile:main", None, "r1", "grid", False),
        ("run:r1", None, "r1", "grid", True),
        ("run:grid", None, "r2", "grid", True),
        ("run:r1", None, "r2", "grid", False),
        ("desk:7", None, "r1", "grid", True),  # unknown scope from a newer perpbot: closed
    ],
)
def test_scope_matching(
    scope: str, profile: str | None, run_id: str, strategy: str, expected: bool
) -> None:
    assert scope_matches(scope, profile=profile, run_id=run_id, strategy=strategy) is expected


def test_levels_only_go_up_per_scope_and_the_strongest_match_wins(state_home: Path) -> None:
    first = new_entry("cancel", "first")
    write_sentinel(first)
    assert read_sentinel().entries == (first,)  # type: ignore[union-attr]
    write_sentinel(new_entry("halt", "weaker, ignored"))
    assert read_sentinel().entries == (first,)  # type: ignore[union-attr]
    stronger = new_entry("flatten", "stronger, replaces")
    write_sentinel(stronger)
    run_scoped = new_entry("halt", "one run", scope="run:r9")
    sentinel = write_sentinel(run_scoped)
    assert sentinel.entries == (stronger, run_scoped)
    assert sentinel.primary == stronger and sentinel.level == "flatten"
    assert sentinel.match(profile=None, run_id="r9") == stronger
    doc = json.loads((state_home / "KILL").read_text())
    assert doc["reason"] == "stronger, replaces" and len(doc["entries"]) == 2


def test_clear_by_scope_then_all_records_history(state_home: Path) -> None:
    a, b = new_entry("cancel", "all bots"), new_entry("halt", "one profile", scope="profile:p")
    write_sentinel(a)
    write_sentinel(b)
    assert clear_sentinel("profile p is fine", scope="profile:p") == [b]
    assert read_sentinel().entries == (a,)  # type: ignore[union-attr]
    assert clear_sentinel("nothing of that scope", scope="run:zz") == []
    assert clear_sentinel("all fine") == [a]
    assert not (state_home / "KILL").exists()
    events = [(h["event"], h.get("reason")) for h in read_history()]
    assert events == [
        ("set", "all bots"),
        ("set", "one profile"),
        ("clear", "profile p is fine"),
        ("clear", "all fine"),
    ]


@pytest.mark.parametrize("content", ["", "{not json", "[1, 2]", '{"entries": [3]}'])
def test_an_unreadable_file_fails_closed(state_home: Path, content: str) -> None:
    (state_home / "KILL").write_text(content)
    sentinel = read_sentinel()
    assert sentinel is not None
    assert sentinel.level == "cancel"
    assert sentinel.match(profile="any", run_id="any", strategy="any") is not None
    assert "treated as cancel for all bots" in sentinel.reason
    # A real kill written over it keeps the real entry only.
    write_sentinel(new_entry("halt", "real"))
    assert [e.reason for e in read_sentinel().entries] == ["real"]  # type: ignore[union-attr]


def test_concurrent_writers_lose_no_entry(state_home: Path) -> None:
    entries = [new_entry("cancel", f"w{i}", scope=f"run:r{i}") for i in range(12)]
    threads = [threading.Thread(target=write_sentinel, args=(e,)) for e in entries]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = read_sentinel()
    assert got is not None
    assert sorted(e.id for e in got.entries) == sorted(e.id for e in entries)


def test_watcher_rereads_only_on_change_and_forced_entries_hold(
    state_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = SentinelWatcher()
    write_sentinel(new_entry("halt", "one"))
    assert watcher.poll().level == "halt"  # type: ignore[union-attr]
    reads: list[object] = []
    with monkeypatch.context() as m:
        m.setattr("perpbot.kill.sentinel.read_sentinel", lambda p=None: reads.append(p))
        for _ in range(5):
            assert watcher.poll() is not None
    assert reads == []
    forced = new_entry("flatten", "could not write", scope="run:r1")
    watcher.force(forced)
    clear_sentinel("cleared on disk")
    assert watcher.match(profile=None, run_id="r1") == forced
    assert watcher.match(profile=None, run_id="r2") is None


def test_describe_names_level_scope_who_and_reason() -> None:
    e = KillEntry("flatten", "outage", "ann@box", 12, 0.0, scope="profile:main")
    text = e.describe()
    assert text.startswith("level flatten for profile main, set by ann@box (pid 12)")
    assert text.endswith("ago: outage")
