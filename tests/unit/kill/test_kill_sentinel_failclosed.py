"""Whatever stands where the KILL file should be and cannot be read counts as a kill.

Every read error (permission, a symlink loop, a dangling symlink, not a regular file,
garbage, a document nested too deep, an absurd size) is a standing ``cancel`` for all bots
with a reason that says what was wrong; reading never blocks (a FIFO) and never raises out
of the watcher or the KillGate.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from perpbot.kill.sentinel import (
    MAX_SENTINEL_BYTES,
    SentinelWatcher,
    new_entry,
    read_sentinel,
    write_sentinel,
)
from tests.unit.kill.test_kill_gate import REQUESTS, _gate, _through


def _dangling(p: Path) -> None:
    p.symlink_to(p.with_name("nowhere"))


def _loop(p: Path) -> None:
    p.symlink_to(p.with_name("KILL2"))
    p.with_name("KILL2").symlink_to(p)


def _fifo(p: Path) -> None:
    os.mkfifo(p)


def _directory(p: Path) -> None:
    p.mkdir()


def _garbage(p: Path) -> None:
    p.write_bytes(b"\x00\xff\xfe garbage \x1b[31m")


def _nested(p: Path) -> None:
    p.write_text("[" * 100_000 + "]" * 100_000)


def _nested_object(p: Path) -> None:
    p.write_text('{"entries": ' + "[" * 100_000 + "]" * 100_000 + "}")


def _huge(p: Path) -> None:
    with open(p, "wb") as fh:
        fh.truncate(MAX_SENTINEL_BYTES + 1)


def _bad_numbers(p: Path) -> None:
    p.write_text(json.dumps({"level": "flatten", "pid": 1e400, "time": "soon"}).replace(
        "Infinity", "1e400"))  # fmt: skip


CASES: dict[str, tuple[Callable[[Path], None], str]] = {
    "dangling symlink": (_dangling, "is a symlink to"),
    "symlink loop": (_loop, "cannot be read (Too many levels of symbolic links)"),
    "fifo": (_fifo, "is a FIFO, not a regular file"),
    "directory": (_directory, "is a directory, not a regular file"),
    "garbage": (_garbage, "it is not perpbot's JSON"),
    "nested 100k deep": (_nested, "nested too deeply to parse"),
    "nested inside an object": (_nested_object, "nested too deeply to parse"),
    "huge": (_huge, "more than perpbot ever writes"),
    "bad numbers": (_bad_numbers, "it is not perpbot's JSON"),
}


def _in_thread(fn: Callable[[], object], timeout: float = 5.0) -> object:
    """Run ``fn`` in a thread: a read that blocks (a FIFO) fails the test instead of hanging."""
    out: list[object] = []
    t = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    t.start()
    t.join(timeout)
    assert not t.is_alive(), "reading the KILL file blocked"
    return out[0]


@pytest.mark.parametrize("case", sorted(CASES))
async def test_every_read_error_is_a_standing_cancel_for_all_bots(
    state_home: Path, case: str
) -> None:
    make, what = CASES[case]
    make(state_home / "KILL")
    sentinel = _in_thread(read_sentinel)
    assert sentinel is not None
    assert sentinel.level == "cancel" and sentinel.primary.scope == "all"  # type: ignore[attr-defined]
    assert what in sentinel.reason and "treated as cancel for all bots" in sentinel.reason  # type: ignore[attr-defined]
    watched = _in_thread(SentinelWatcher().poll)
    assert watched is not None and what in watched.reason  # type: ignore[attr-defined]
    # The gate refuses what adds risk, lets cancels and reads through, and never raises
    # anything but KillSwitchActive.
    gate, _ = _gate()
    assert not await _through(gate, REQUESTS["order"])
    assert not await _through(gate, REQUESTS["reduce_only"])
    assert await _through(gate, REQUESTS["cancel"]) and await _through(gate, REQUESTS["read"])


def test_a_real_kill_replaces_a_fifo_or_a_dangling_link(state_home: Path) -> None:
    for make in (_fifo, _dangling):
        make(state_home / "KILL")
        entry = new_entry("halt", "a human looked")
        _in_thread(lambda e=entry: write_sentinel(e))
        got = read_sentinel()
        assert got is not None and [e.reason for e in got.entries] == ["a human looked"]
        (state_home / "KILL").unlink()


def test_the_watcher_sees_a_file_turn_bad_and_good_again(state_home: Path) -> None:
    watcher = SentinelWatcher()
    assert watcher.poll() is None
    _dangling(state_home / "KILL")
    assert "is a symlink to" in watcher.poll().reason  # type: ignore[union-attr]
    (state_home / "KILL").unlink()
    assert watcher.poll() is None
    write_sentinel(new_entry("halt", "fine"))
    assert watcher.poll().reason == "fine"  # type: ignore[union-attr]
    (state_home / "KILL").chmod(0o000)  # a chmod changes ctime: read again
    got = watcher.poll()
    assert got is not None
    if os.geteuid() != 0:
        assert "Permission denied" in got.reason
    (state_home / "KILL").chmod(0o644)


def _read_as_nobody(path: Path) -> str:
    """Read the sentinel in a child running as another user: its reason (or 'clear')."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.close(r)
            os.setgid(65534)
            os.setuid(65534)
            got = read_sentinel(path)
            os.write(w, (got.reason if got else "clear").encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as fh:
        text = fh.read().decode()
    os.waitpid(pid, 0)
    return text


@pytest.fixture
def shared_home(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A state dir other users can traverse (pytest's tmp dirs are private to this user)."""
    home = Path(tempfile.mkdtemp(prefix="perpbot-shared-"))
    home.chmod(0o755)
    monkeypatch.setenv("PERPBOT_HOME", str(home))
    yield home
    shutil.rmtree(home, ignore_errors=True)


def test_the_sentinel_is_readable_by_another_user(shared_home: Path) -> None:
    write_sentinel(new_entry("cancel", "shared desk"))
    assert (shared_home / "KILL").stat().st_mode & 0o777 == 0o644
    if os.geteuid() != 0:
        return  # cannot become another user: the mode is the promise
    assert _read_as_nobody(shared_home / "KILL") == "shared desk"


def test_a_sentinel_another_user_cannot_read_is_a_kill(shared_home: Path) -> None:
    (shared_home / "KILL").write_text("{}")
    (shared_home / "KILL").chmod(0o600)
    if os.geteuid() == 0:
        reason = _read_as_nobody(shared_home / "KILL")
    else:
        (shared_home / "KILL").chmod(0o000)
        reason = read_sentinel().reason  # type: ignore[union-attr]
    assert "cannot be read (Permission denied)" in reason
    assert "treated as cancel for all bots" in reason
