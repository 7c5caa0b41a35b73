"""The kill sentinel: ``$PERPBOT_HOME/KILL``. Its existence is the switch.

It holds JSON (level, reason, who, where, when, scope) and stays until someone clears it,
across restarts and reboots. Every reader that finds it honours it: ``perpbot run`` refuses
to start, the KillGate refuses anything that adds risk, each run's watchdog acts.

Several kills may stand at once (``--profile a`` then ``--run grid``): the file keeps every
standing *entry*, and its top-level fields repeat the strongest one so that a human (or a
script) reading the file sees the state at a glance. A run obeys the strongest entry that
matches it. Whatever stands at ``KILL`` and cannot be read as perpbot's JSON (an empty or
garbage file, one this user may not read, a symlink loop or a dangling symlink, a FIFO or a
directory, a document nested too deep) counts as ``cancel`` for all bots, with a reason that
says what was wrong: the switch fails closed. Reading never blocks and never raises. The
file is written mode 0644: bots of other OS users on the same state dir must read it.

This module is on the ``perpbot kill`` path and imports only the standard library and
perpbot's light helpers: no ccxt, aiohttp, pydantic or rich.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from perpbot.fsutil import atomic_write_json
from perpbot.paths import kill_path, state_dir, state_path

LEVELS: tuple[str, ...] = ("halt", "cancel", "flatten")
LEVEL_RANK: dict[str, int] = {name: i for i, name in enumerate(LEVELS)}
LEVEL_MEANING: dict[str, str] = {
    "halt": "no new orders; open orders stay",
    "cancel": "cancel every open order; then only cancels",
    "flatten": "cancel every open order and close every position with reduce-only orders",
}
SCOPE_KINDS: tuple[str, ...] = ("profile", "run")
# Readable by bots of other OS users sharing the state dir (it holds no secret): a bot that
# cannot read it would have to treat it as a kill.
SENTINEL_MODE = 0o644
CLEAR_HINT = "clear it with `perpbot kill --clear --yes` (alias: `perpbot resume --yes`)"


def who_am_i() -> str:
    """``user@host`` of this process, for the record (never a secret)."""
    user = os.environ.get("USER") or os.environ.get("LOGNAME")
    if not user:
        try:
            # lazy: POSIX only (ImportError handled)
            import pwd

            user = pwd.getpwuid(os.getuid()).pw_name
        except (ImportError, KeyError, OSError):
            user = "unknown"
    return f"{user}@{os.uname().nodename}"


def scope_matches(
    scope: str, *, profile: str | None, run_id: str | None, strategy: str | None
) -> bool:
    """Does ``scope`` ("all", "profile:P", "run:R") cover a bot with these names?

    ``run:R`` matches a run id or a strategy name, so that a trip scoped to a strategy also
    stops that strategy from being restarted under a new run id.
    """
    if scope == "all":
        return True
    kind, _, target = scope.partition(":")
    if kind == "profile":
        return profile is not None and target == profile
    if kind == "run":
        return target in (run_id, strategy)
    return True  # an unknown scope (a newer perpbot wrote it): fail closed


def describe_scope(scope: str) -> str:
    if scope == "all":
        return "all bots"
    kind, _, target = scope.partition(":")
    return f"{kind} {target}" if kind in SCOPE_KINDS else scope


def _age(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


@dataclass(frozen=True)
class KillEntry:
    """One standing kill: what level, why, who set it, and which bots it covers."""

    level: str
    reason: str
    who: str
    pid: int
    time: float
    scope: str = "all"
    code: str = "KILL_MANUAL"
    source: str = "cli"  # "cli" (perpbot kill), "trip" (an automatic trip), "file"
    id: str = field(default_factory=lambda: os.urandom(6).hex())

    @property
    def rank(self) -> int:
        return LEVEL_RANK.get(self.level, LEVEL_RANK["cancel"])

    @property
    def age_s(self) -> float:
        return time.time() - self.time

    def matches(
        self, *, profile: str | None, run_id: str | None = None, strategy: str | None = None
    ) -> bool:
        return scope_matches(self.scope, profile=profile, run_id=run_id, strategy=strategy)

    def describe(self) -> str:
        """'level cancel for all bots, set by alice@host (pid 12) 3 min ago: <reason>'."""
        return (
            f"level {self.level} for {describe_scope(self.scope)}, set by {self.who} "
            f"(pid {self.pid}) {_age(self.age_s)} ago: {self.reason}"
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> KillEntry:
        level = str(raw.get("level") or "cancel")
        return cls(
            level=level if level in LEVEL_RANK else "cancel",
            reason=str(raw.get("reason") or "(no reason given)"),
            who=str(raw.get("who") or "unknown"),
            pid=int(raw.get("pid") or 0),
            time=float(raw.get("time") or 0.0),
            scope=str(raw.get("scope") or "all"),
            code=str(raw.get("code") or "KILL_MANUAL"),
            source=str(raw.get("source") or "cli"),
            id=str(raw.get("id") or "unknown"),
        )


def strongest(entries: Iterator[KillEntry] | list[KillEntry]) -> KillEntry | None:
    """The highest level; among equals the oldest (it has stood longest)."""
    best: KillEntry | None = None
    for e in entries:
        if best is None or e.rank > best.rank or (e.rank == best.rank and e.time < best.time):
            best = e
    return best


@dataclass(frozen=True)
class Sentinel:
    """The standing kill entries (at least one) as read from the KILL file."""

    entries: tuple[KillEntry, ...]

    @property
    def primary(self) -> KillEntry:
        best = strongest(list(self.entries))
        assert best is not None
        return best

    # The primary entry's fields, for `perpbot status` and quick readers.
    @property
    def level(self) -> str:
        return self.primary.level

    @property
    def reason(self) -> str:
        return self.primary.reason

    @property
    def age_s(self) -> float:
        return self.primary.age_s

    def describe(self) -> str:
        lines = [e.describe() for e in self.entries]
        return "; ".join(lines)

    def match(
        self, *, profile: str | None, run_id: str | None = None, strategy: str | None = None
    ) -> KillEntry | None:
        """The strongest entry covering this bot, or None when none does."""
        return strongest(
            [
                e
                for e in self.entries
                if e.matches(profile=profile, run_id=run_id, strategy=strategy)
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"version": 1, **self.primary.to_dict()}
        doc["entries"] = [e.to_dict() for e in self.entries]
        return doc


MAX_SENTINEL_BYTES = 1 << 20  # perpbot's own file is a few hundred bytes per entry
FAIL_CLOSED = "treated as cancel for all bots"


def fail_closed(why: str, when: float | None = None) -> Sentinel:
    """The sentinel a KILL file that cannot be trusted stands for: cancel, all bots."""
    return Sentinel(
        (
            KillEntry(
                level="cancel",
                reason=f"{why}; {FAIL_CLOSED}",
                who="unknown",
                pid=0,
                time=time.time() if when is None else when,
                source="file",
                id="file",
            ),
        )
    )


def parse_sentinel(text: str, mtime: float) -> Sentinel:
    """Parse the KILL file; anything unparseable fails closed (cancel, all bots)."""
    try:
        doc = json.loads(text)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        raw_entries = doc.get("entries")
        if not isinstance(raw_entries, list) or not raw_entries:
            raw_entries = [doc]
        entries = tuple(KillEntry.from_dict(r) for r in raw_entries if isinstance(r, dict))
        if not entries:
            raise ValueError("no entries")
        return Sentinel(entries)
    except RecursionError:
        return fail_closed("a KILL file is present but it is nested too deeply to parse", mtime)
    except (ValueError, TypeError, OverflowError) as exc:
        why = "it is empty" if not text.strip() else f"it is not perpbot's JSON ({exc})"
        return fail_closed(f"a KILL file is present but {why}"[:300], mtime)


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _read_file(path: Path) -> Sentinel | None:
    """Open without following into a block (O_NONBLOCK: a FIFO never waits for a writer),
    check it is a regular file of a sane size, then read it."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        if os.path.lexists(path):  # the name exists: a symlink to nothing
            target = os.readlink(path) if os.path.islink(path) else "?"
            return fail_closed(
                f"the KILL file {path} is a symlink to {target!r}, which does not exist"
            )
        return None
    except OSError as exc:  # EACCES (another user's 0600 file), ELOOP, ENXIO (a socket)...
        return fail_closed(f"the KILL file {path} cannot be read ({exc.strerror or exc})")
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return fail_closed(
                f"the KILL file {path} is {_file_kind(st.st_mode)}, not a regular file", st.st_mtime
            )
        if st.st_size > MAX_SENTINEL_BYTES:
            return fail_closed(
                f"the KILL file {path} is {st.st_size} bytes, more than perpbot ever writes "
                f"({MAX_SENTINEL_BYTES})",
                st.st_mtime,
            )
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_SENTINEL_BYTES:
            chunk = os.read(fd, MAX_SENTINEL_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_SENTINEL_BYTES:
            return fail_closed(
                f"the KILL file {path} grew past {MAX_SENTINEL_BYTES} bytes", st.st_mtime
            )
    except OSError as exc:
        return fail_closed(f"the KILL file {path} cannot be read ({exc.strerror or exc})")
    finally:
        os.close(fd)
    return parse_sentinel(b"".join(chunks).decode("utf-8", errors="replace"), st.st_mtime)


def _unusable_home(exc: OSError) -> str:
    home = state_path()
    if home.exists() and not home.is_dir():
        return f"the state dir {home} is not a directory, so the KILL file cannot be read"
    return f"the state dir {home} cannot be used ({exc.strerror or exc})"


def read_sentinel(path: Path | None = None) -> Sentinel | None:
    """The standing sentinel, or None when the switch is clear. Cheap: one small read.

    Never raises and never blocks: whatever stands where the KILL file should be and cannot
    be read as perpbot's JSON (an unreadable file, a symlink loop or a dangling symlink, a
    FIFO, a directory, garbage) counts as ``cancel`` for all bots, with a reason saying what
    was wrong.
    """
    try:
        p = path or kill_path()
    except OSError as exc:
        return fail_closed(_unusable_home(exc))
    try:
        return _read_file(p)
    except Exception as exc:  # any surprise fails closed, never out of a reader
        return fail_closed(f"the KILL file {p} cannot be read ({type(exc).__name__}: {exc})")


# -- writing ------------------------------------------------------------------------------
def kill_dir() -> Path:
    path = state_dir() / "kill"
    path.mkdir(parents=True, exist_ok=True)
    return path


def history_path() -> Path:
    return kill_dir() / "history.jsonl"


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise read-modify-write of the KILL file between processes."""
    lock = state_dir() / "KILL.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            # lazy: POSIX only (ImportError handled)
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX)
        except ImportError:  # pragma: no cover - not POSIX
            pass
        yield
    finally:
        os.close(fd)  # closing releases the lock


def append_history(record: dict[str, Any]) -> None:
    """One line per set/clear in ``<state>/kill/history.jsonl`` (flushed and fsynced)."""
    line = json.dumps(record, sort_keys=True, default=str) + "\n"
    with open(history_path(), "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()
        os.fsync(fh.fileno())


def new_entry(
    level: str,
    reason: str,
    *,
    scope: str = "all",
    code: str = "KILL_MANUAL",
    source: str = "cli",
) -> KillEntry:
    if level not in LEVEL_RANK:
        raise ValueError(f"unknown kill level {level!r}")
    return KillEntry(
        level=level,
        reason=reason,
        who=who_am_i(),
        pid=os.getpid(),
        time=time.time(),
        scope=scope,
        code=code,
        source=source,
    )


def write_sentinel(entry: KillEntry) -> Sentinel:
    """Add ``entry`` to the KILL file (atomically, under a lock); returns what now stands.

    An entry with the same scope replaces a weaker one and is absorbed by a stronger or
    equal one (the standing reason is kept): a kill never lowers the level.
    """
    with _locked():
        current = read_sentinel()
        entries = [e for e in (current.entries if current else ()) if e.source != "file"]
        same = [e for e in entries if e.scope == entry.scope]
        if same and max(e.rank for e in same) >= entry.rank:
            return current if current is not None else Sentinel(tuple(entries))
        entries = [e for e in entries if e.scope != entry.scope] + [entry]
        sentinel = Sentinel(tuple(entries))
        atomic_write_json(kill_path(), sentinel.to_dict(), mode=SENTINEL_MODE)
    with contextlib.suppress(OSError):
        append_history({"event": "set", **entry.to_dict()})
    return sentinel


def clear_sentinel(reason: str, *, scope: str | None = None) -> list[KillEntry]:
    """Remove every entry (or those of ``scope``); records who and why. Returns the removed."""
    with _locked():
        current = read_sentinel()
        if current is None:
            return []
        if scope is None:
            removed, kept = list(current.entries), []
        else:
            removed = [e for e in current.entries if e.scope == scope]
            kept = [e for e in current.entries if e.scope != scope]
        if kept:
            atomic_write_json(kill_path(), Sentinel(tuple(kept)).to_dict(), mode=SENTINEL_MODE)
        elif removed:
            kill_path().unlink(missing_ok=True)
    if removed:
        append_history(
            {
                "event": "clear",
                "who": who_am_i(),
                "pid": os.getpid(),
                "time": time.time(),
                "reason": reason,
                "scope": scope or "all entries",
                "cleared": [e.to_dict() for e in removed],
            }
        )
    return removed


def read_history(limit: int | None = None) -> list[dict[str, Any]]:
    try:
        lines = history_path().read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    out: list[dict[str, Any]] = []
    for line in lines[-limit:] if limit else lines:
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


# -- watching -----------------------------------------------------------------------------
class SentinelWatcher:
    """A cached view of the KILL file: one ``stat`` per poll, a read only when it changed.

    ``force`` adds an in-memory entry, used when a trip could not write the file (disk full,
    read-only state dir): the trip still holds in this process.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or kill_path()
        self._sig: tuple[int, ...] | None = None
        self._cached: Sentinel | None = None
        self._forced: list[KillEntry] = []

    def poll(self) -> Sentinel | None:
        """What stands now; never raises (a failure to look fails closed, see read_sentinel)."""
        try:
            current = self._look()
        except Exception as exc:
            current = fail_closed(f"the KILL file {self.path} cannot be checked ({exc})")
        if not self._forced:
            return current
        base = current.entries if current else ()
        return Sentinel(tuple(base) + tuple(self._forced))

    def _look(self) -> Sentinel | None:
        try:
            st = os.stat(self.path)
        except OSError:  # gone, or a dangling symlink, a loop, no permission: read says which
            self._sig = None
            self._cached = read_sentinel(self.path)
            return self._cached
        sig = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_mode)
        if sig != self._sig:
            self._cached = read_sentinel(self.path)
            self._sig = sig
        return self._cached

    def force(self, entry: KillEntry) -> None:
        self._forced.append(entry)

    def match(
        self, *, profile: str | None, run_id: str | None = None, strategy: str | None = None
    ) -> KillEntry | None:
        sentinel = self.poll()
        if sentinel is None:
            return None
        return sentinel.match(profile=profile, run_id=run_id, strategy=strategy)


_WATCHERS: dict[Path, SentinelWatcher] = {}


def shared_watcher() -> SentinelWatcher:
    """One watcher per KILL path per process, shared by the gate, watchdog and trips."""
    path = kill_path()
    watcher = _WATCHERS.get(path)
    if watcher is None:
        watcher = _WATCHERS[path] = SentinelWatcher(path)
    return watcher
