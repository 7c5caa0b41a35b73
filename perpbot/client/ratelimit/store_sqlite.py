"""The default shared store: one SQLite file per exchange host, in WAL mode.

WAL lets readers (``perpbot status``, the tick provider) proceed while a writer holds the
lock; ``BEGIN IMMEDIATE`` takes the write lock before reading, so two processes can never
both see room for the last unit of weight. ``synchronous=NORMAL`` is enough: the state is
a few counters that a crash may lose, and the exchange's usage headers restore them.

Every request asks "is the host blocked (Retry-After, ban)?", so that answer also lives in
a 16-byte sidecar file (``<host>.blockflag``), mapped into memory: reading it is a memory
read of the page every process shares (no system call), where a SELECT would cost more
than the rest of the request's bookkeeping. It holds the time as the bits of a double and
their complement, read as two machine words; it is written inside the transaction (before
COMMIT: a failed commit can only leave it more cautious), so a read racing a write sees
the two words disagree and reads again (or asks the database).
"""

from __future__ import annotations

import json
import mmap
import os
import sqlite3
import struct
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from perpbot.client.ratelimit.state import HostState
from perpbot.client.ratelimit.store import blocked_of, unavailable

T = TypeVar("T")
BUSY_TIMEOUT_S = 10.0
_FLAG_SIZE = 16
_ALL_ONES = (1 << 64) - 1


def _encode_flag(until: float) -> bytes:
    (bits,) = struct.unpack("=Q", struct.pack("=d", until))
    return struct.pack("=QQ", bits, bits ^ _ALL_ONES)


def _decode_flag(word: int, check: int) -> float | None:
    """The time the two words hold, or None when they disagree (a torn read)."""
    if word ^ check != _ALL_ONES:
        return None
    (until,) = struct.unpack("=d", struct.pack("=Q", word))
    return float(until)


class SqliteStore:
    def __init__(self, path: Path, host: str) -> None:
        self.path = path
        self.host = host
        self.description = f"sqlite {path}"
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(
                str(path), timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS budget_v1 "
                "(host TEXT PRIMARY KEY, doc TEXT NOT NULL, blocked REAL NOT NULL DEFAULT 0)"
            )
            self._flag = os.open(path.with_suffix(".blockflag"), os.O_RDWR | os.O_CREAT, 0o600)
            if os.fstat(self._flag).st_size < _FLAG_SIZE:
                # zero-filled up to its size; never shrinks nor overwrites a flag written
                # meanwhile by another process
                os.ftruncate(self._flag, _FLAG_SIZE)
            self._flag_map = mmap.mmap(self._flag, _FLAG_SIZE, access=mmap.ACCESS_READ)
            self._words = memoryview(self._flag_map).cast("Q")
            # the last word read and the time it held (all zeros: never written)
            self._seen_word, self._seen_until = 0, 0.0
        except (sqlite3.Error, OSError) as exc:
            raise unavailable(self.description, exc) from None

    def _load(self) -> tuple[HostState, str | None]:
        row = self._db.execute("SELECT doc FROM budget_v1 WHERE host = ?", (self.host,)).fetchone()
        raw = row[0] if row else None
        return HostState.from_dict(json.loads(raw) if raw else None), raw

    def transact(self, fn: Callable[[HostState], T]) -> T:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    state, raw = self._load()
                    result = fn(state)
                    doc = json.dumps(state.to_dict(), separators=(",", ":"))
                    if doc != raw:
                        blocked = blocked_of(state)
                        self._db.execute(
                            "INSERT INTO budget_v1 (host, doc, blocked) VALUES (?, ?, ?) "
                            "ON CONFLICT(host) DO UPDATE SET doc = excluded.doc, "
                            "blocked = excluded.blocked",
                            (self.host, doc, blocked),
                        )
                        os.pwrite(self._flag, _encode_flag(blocked), 0)
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                raise unavailable(self.description, exc) from None
            return result

    def read(self) -> HostState:
        with self._lock:
            try:
                return self._load()[0]
            except sqlite3.Error as exc:
                raise unavailable(self.description, exc) from None

    def blocked_until(self) -> float:
        words = self._words
        if words[0] == self._seen_word:  # unchanged since the last read (the common case)
            return self._seen_until
        for _ in range(3):  # a read racing a write: the words disagree, read again
            word, check = words[0], words[1]
            until = _decode_flag(word, check)
            if until is not None:
                self._seen_word, self._seen_until = word, until
                return until
        with self._lock:
            try:
                row = self._db.execute(
                    "SELECT blocked FROM budget_v1 WHERE host = ?", (self.host,)
                ).fetchone()
            except sqlite3.Error as exc:
                raise unavailable(self.description, exc) from None
        return float(row[0]) if row else 0.0

    def close(self) -> None:
        with self._lock:
            if self._flag_map.closed:
                return
            self._db.close()
            self._words.release()
            self._flag_map.close()
            os.close(self._flag)
