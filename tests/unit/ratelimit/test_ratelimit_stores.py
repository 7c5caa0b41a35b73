"""The shared stores make read-modify-write atomic across processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from pathlib import Path

import pytest

from perpbot.errors import BadInput, RuntimeFailure
from perpbot.ratelimit.budget import HostState
from perpbot.ratelimit.stores import MemoryStore, SqliteStore, host_slug, open_store


def _bump(st: HostState) -> None:
    st.blocked_until += 1.0


def _hammer(path: str, n: int) -> None:
    store = SqliteStore(Path(path), "h:1")
    for _ in range(n):
        store.transact(_bump)
    store.close()


def test_sqlite_increments_from_several_processes_are_never_lost(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_hammer, args=(str(path), 150)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = SqliteStore(path, "h:1")
    assert store.read().blocked_until == 450.0
    assert store.transact(lambda st: "result") == "result"
    journal = store._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert journal == "wal"
    store.close()


def test_sqlite_rolls_back_when_the_maths_fails(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "h.sqlite", "h:1")
    store.transact(_bump)

    def boom(st: HostState) -> None:
        st.blocked_until = 99.0
        raise ValueError("bug")

    with pytest.raises(ValueError):
        store.transact(boom)
    assert store.read().blocked_until == 1.0


def test_sqlite_unusable_file_fails_closed_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "dir.sqlite").mkdir()
    with pytest.raises(RuntimeFailure) as err:
        SqliteStore(tmp_path / "dir.sqlite", "h:1")
    assert err.value.code == "RATE_STORE_UNAVAILABLE"


def test_open_store_by_name(state_home: Path) -> None:
    store = open_store("sqlite", "127.0.0.1:8080")
    assert isinstance(store, SqliteStore)
    assert store.path == state_home / "limits" / "127.0.0.1_8080.sqlite"
    store.close()
    mem = open_store("memory", "x:1")
    assert isinstance(mem, MemoryStore)
    mem.transact(_bump)
    assert open_store("memory", "x:1").read().blocked_until == 1.0  # shared in-process
    with pytest.raises(BadInput):
        open_store("mysql://nope", "x:1")
    assert host_slug("fapi.binance.com") == "fapi.binance.com"


def test_unreachable_redis_fails_closed_without_leaking_the_password() -> None:
    store = open_store("redis://:hunter2@127.0.0.1:1/0", "x:1")
    with pytest.raises(RuntimeFailure) as err:
        store.read()
    assert err.value.code == "RATE_STORE_UNAVAILABLE"
    assert "hunter2" not in err.value.message
    assert "redis 127.0.0.1:1/0" in err.value.message


def test_the_blocked_time_is_shared_and_its_read_never_waits_for_a_writer(
    tmp_path: Path,
) -> None:
    one, two = SqliteStore(tmp_path / "h.sqlite", "h:1"), SqliteStore(tmp_path / "h.sqlite", "h:1")
    assert two.blocked_until() == 0.0  # nothing ever blocked

    def seen_by_two(value: float) -> None:  # within the watcher's period (10 ms)
        deadline = time.monotonic() + 1.0
        while two.blocked_until() != value:
            assert time.monotonic() < deadline, f"{value} never reached the other store"
            time.sleep(0.002)

    one.transact(lambda st: setattr(st, "blocked_until", 1234.5))
    assert one.blocked_until() == 1234.5  # its own write, at once
    seen_by_two(1234.5)
    one.transact(lambda st: setattr(st, "banned_until", 2000.25))
    seen_by_two(2000.25)  # a ban counts as blocked too
    holder = sqlite3.connect(tmp_path / "h.sqlite", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")  # another process's write lock
    t0 = time.monotonic()
    for _ in range(5):  # across several periods of the watcher
        assert two.blocked_until() == 2000.25
        time.sleep(0.01)
    assert time.monotonic() - t0 < 0.5  # (the busy timeout of a transaction is 10 s)
    holder.execute("ROLLBACK")
    holder.close()
    one.close()
    two.close()
