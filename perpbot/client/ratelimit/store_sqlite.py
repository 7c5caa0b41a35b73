"""The default shared store: one SQLite file per exchange host, in WAL mode.

WAL lets readers (``perpbot status``, the tick provider) proceed while a writer holds the
lock; ``BEGIN IMMEDIATE`` takes the write lock before reading, so two processes can never
both see room for the last unit of weight. ``synchronous=NORMAL`` is enough: the state is
a few counters that a crash may lose, and the exchange's usage headers restore them.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from perpbot.client.ratelimit.budget import HostState
from perpbot.client.ratelimit.store import unavailable

T = TypeVar("T")
BUSY_TIMEOUT_S = 10.0


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
            self._db.execute("CREATE TABLE IF NOT EXISTS budget (host TEXT PRIMARY KEY, doc TEXT)")
        except sqlite3.Error as exc:
            raise unavailable(self.description, exc) from None

    def _load(self) -> tuple[HostState, str | None]:
        row = self._db.execute("SELECT doc FROM budget WHERE host = ?", (self.host,)).fetchone()
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
                        self._db.execute(
                            "INSERT INTO budget (host, doc) VALUES (?, ?) "
                            "ON CONFLICT(host) DO UPDATE SET doc = excluded.doc",
                            (self.host, doc),
                        )
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise unavailable(self.description, exc) from None
            return result

    def read(self) -> HostState:
        with self._lock:
            try:
                return self._load()[0]
            except sqlite3.Error as exc:
                raise unavailable(self.description, exc) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
