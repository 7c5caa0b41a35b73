"""Shared budget stores: where every process using one exchange host keeps its counts.

A store does one thing: run ``fn(state)`` on the host's ``HostState`` atomically with
respect to every other process sharing it, and persist the result. The maths lives in
``budget``; the stores differ only in how they make the read-modify-write atomic:

- ``sqlite`` (default): a WAL-mode SQLite file per host under ``perpbot.paths.limits_dir()``
  (every process on this machine); ``BEGIN IMMEDIATE`` serialises writers.
- ``redis://host:port/db``: one key per host on a Redis server (every machine that uses
  it); ``WATCH``/``MULTI`` optimistic transactions. Needs the ``perpbot[redis]`` extra.
- ``memory``: this process only (tests, or a single bot that wants no file).

``transact`` and ``read`` may wait (a SQLite write lock held by another process, up to
``BUSY_TIMEOUT_S``; a slow Redis, up to ``SOCKET_TIMEOUT_S``): the layer calls them only from
its store thread (``host.HostBudget``), never on the event loop that runs the kill watchdog.
``blocked_until`` is the one question asked on the loop, before every request: it never
waits (see each store). A store that cannot be reached refuses the request (fail closed)
with RATE_STORE_UNAVAILABLE.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from perpbot.errors import BadInput, RuntimeFailure
from perpbot.paths import limits_dir
from perpbot.ratelimit.budget import HostState

T = TypeVar("T")
REDIS_HINT = "the redis store needs the redis package: pip install 'perpbot[redis]'"


class Store(Protocol):
    description: str

    def transact(self, fn: Callable[[HostState], T]) -> T: ...

    def read(self) -> HostState: ...

    def blocked_until(self) -> float:
        """Until when the host is blocked (Retry-After or ban), as far as this store can
        tell without waiting: asked on the event loop before every request."""
        ...

    def close(self) -> None: ...


def blocked_of(state: HostState) -> float:
    """Until when requests must ask the store (not spend a lease): a Retry-After, a ban, or
    an order-count Retry-After (which the store's transaction applies to orders alone)."""
    return max(state.blocked_until, state.banned_until, state.orders_blocked_until)


def unavailable(description: str, exc: BaseException) -> RuntimeFailure:
    return RuntimeFailure(
        f"the shared rate-limit store ({description}) is unavailable: {type(exc).__name__}: "
        f"{exc}; refusing to send requests without a budget",
        code="RATE_STORE_UNAVAILABLE",
    )


def _decode(raw: str | bytes | None) -> HostState:
    """The stored state; a document that is not JSON is read as no document (like wrong
    types, which ``from_dict`` drops): the budget restarts and the exchange's usage headers
    correct it on the first answer, while a crash here would stop every bot on the key."""
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = None
    return HostState.from_dict(doc)


def _encode(state: HostState) -> str:
    return json.dumps(state.to_dict(), separators=(",", ":"))


class MemoryStore:
    """Process-local state, shared by every client of this process talking to one host."""

    _states: dict[str, HostState] = {}  # noqa: RUF012 - deliberately process-wide
    _lock = threading.Lock()

    def __init__(self, host: str) -> None:
        self.host = host
        self.description = f"memory ({host})"

    def transact(self, fn: Callable[[HostState], T]) -> T:
        # on a copy, as the other stores decode one: a state handed out (the mirror) is
        # never changed afterwards by another thread
        with self._lock:
            state = HostState.from_dict(self._states.setdefault(self.host, HostState()).to_dict())
            result = fn(state)
            self._states[self.host] = state
            return result

    def read(self) -> HostState:
        with self._lock:
            return HostState.from_dict(self._states.setdefault(self.host, HostState()).to_dict())

    def blocked_until(self) -> float:
        state = self._states.get(self.host)
        return blocked_of(state) if state is not None else 0.0

    def close(self) -> None:
        return None


class SqliteStore:
    """One SQLite file per exchange host, in WAL mode.

    WAL lets readers proceed while a writer holds the lock; ``BEGIN IMMEDIATE`` takes the
    write lock before reading, so two processes can never both see room for the last unit
    of weight. ``synchronous=NORMAL`` is enough: the state is a few counters that a crash
    may lose, and the exchange's usage headers restore them.

    ``blocked_until`` asks SQLite nothing: a watcher thread reads the ``blocked`` column every
    ``BLOCK_POLL_S`` through a second connection that never waits (busy timeout 0; a WAL
    read does not wait for a writer anyway), and this store's own transactions and reads set
    it at once. A block another process met is so seen within ``BLOCK_POLL_S``: a SELECT on
    every request would cost ~15 µs, as much as the rest of the limiter's bookkeeping.
    """

    BUSY_TIMEOUT_S = 10.0
    BLOCK_POLL_S = 0.01

    def __init__(self, path: Path, host: str) -> None:
        self.path = path
        self.host = host
        self.description = f"sqlite {path}"
        self._lock = threading.Lock()  # the writing connection (the store thread's)
        self._read_lock = threading.Lock()  # the reading one (the event loop's)
        self._blocked = 0.0
        self._closed = False
        try:
            self._db = sqlite3.connect(
                str(path),
                timeout=self.BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS budget_v1 "
                "(host TEXT PRIMARY KEY, doc TEXT NOT NULL, blocked REAL NOT NULL DEFAULT 0)"
            )
            self._reader = sqlite3.connect(
                str(path), timeout=0.0, isolation_level=None, check_same_thread=False
            )
        except (sqlite3.Error, OSError) as exc:
            raise unavailable(self.description, exc) from None
        self._read_blocked()
        self._closing = threading.Event()
        self._watcher = threading.Thread(
            target=self._watch, name="perpbot-sqlite-blocks", daemon=True
        )
        self._watcher.start()

    def _load(self) -> tuple[HostState, str | None]:
        row = self._db.execute("SELECT doc FROM budget_v1 WHERE host = ?", (self.host,)).fetchone()
        raw = row[0] if row else None
        return _decode(raw), raw

    def transact(self, fn: Callable[[HostState], T]) -> T:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    state, raw = self._load()
                    result = fn(state)
                    doc = _encode(state)
                    if doc != raw:
                        self._db.execute(
                            "INSERT INTO budget_v1 (host, doc, blocked) VALUES (?, ?, ?) "
                            "ON CONFLICT(host) DO UPDATE SET doc = excluded.doc, "
                            "blocked = excluded.blocked",
                            (self.host, doc, blocked_of(state)),
                        )
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except (sqlite3.Error, OSError) as exc:
                raise unavailable(self.description, exc) from None
            self._blocked = blocked_of(state)
            return result

    def read(self) -> HostState:
        with self._lock:
            try:
                state = self._load()[0]
            except sqlite3.Error as exc:
                raise unavailable(self.description, exc) from None
        self._blocked = blocked_of(state)
        return state

    def blocked_until(self) -> float:
        return self._blocked  # kept current by the watcher thread and our own transactions

    def _read_blocked(self) -> None:
        with self._read_lock:
            try:
                row = self._reader.execute(
                    "SELECT blocked FROM budget_v1 WHERE host = ?", (self.host,)
                ).fetchone()
            except sqlite3.Error:  # busy (never wait here) or closed: keep the last value
                return
        if row is not None:
            self._blocked = float(row[0])

    def _watch(self) -> None:
        while not self._closing.wait(self.BLOCK_POLL_S):
            self._read_blocked()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closing.set()
        self._watcher.join()
        with self._lock, self._read_lock:
            self._closed = True
            self._db.close()
            self._reader.close()


def describe_redis_url(url: str) -> str:
    parts = urlsplit(url)
    db = parts.path.lstrip("/") or "0"
    return f"redis {parts.hostname}:{parts.port or 6379}/{db}"


class RedisStore:
    """One budget across machines: ``[limits] store = "redis://host:port/db"``.

    One Redis key per exchange host holds the same JSON document the SQLite store keeps; an
    optimistic ``WATCH``/``MULTI`` transaction re-runs the (pure) budget maths when another
    client wrote in between. The URL's password, if any, is never shown: the store
    describes itself by host, port and db only.

    ``blocked_until`` asks Redis nothing: a transaction that changes the block time also
    publishes it on a channel, and a listener thread subscribed to that channel keeps it
    current. The same thread reads the key itself every ``RECHECK_S`` and whenever it has
    (re)subscribed, since Redis pub/sub drops what it cannot deliver.
    """

    MAX_CONFLICTS = 200
    SOCKET_TIMEOUT_S = 2.0
    RECHECK_S = 1.0  # the listener reads the block key itself this often
    LISTEN_POLL_S = 0.2  # the listener looks for messages (and for close) this often
    RESUBSCRIBE_S = 0.5  # after a lost subscription, try again after this long

    def __init__(self, url: str, host: str) -> None:
        self.description = describe_redis_url(url)
        try:
            # lazy: redis is the optional `perpbot[redis]` extra; only a redis:// store needs it
            import redis
        except ImportError:
            raise RuntimeFailure(REDIS_HINT, code="RATE_STORE_UNAVAILABLE") from None
        self.key = f"perpbot:limits:{host}"
        self.blocked_key = self.key + ":blocked"
        self.channel = self.key + ":blocked:changes"
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._watch_error = redis.WatchError
        try:
            self._client: Any = redis.Redis.from_url(
                url,
                socket_timeout=self.SOCKET_TIMEOUT_S,
                socket_connect_timeout=self.SOCKET_TIMEOUT_S,
            )
        except (ValueError, *self._errors) as exc:
            raise unavailable(self.description, exc) from None
        self._blocked = 0.0  # as last seen: a message, a read of the key, our own write
        self._live = False  # whether the subscription is up
        self._closed = threading.Event()
        self._listener = threading.Thread(
            target=self._listen, name="perpbot-redis-blocks", daemon=True
        )
        self._listener.start()

    def transact(self, fn: Callable[[HostState], T]) -> T:
        try:
            with self._client.pipeline() as pipe:
                for _ in range(self.MAX_CONFLICTS):
                    try:
                        pipe.watch(self.key)
                        raw = pipe.get(self.key)
                        state = _decode(raw)
                        was = blocked_of(state)
                        result = fn(state)
                        doc = _encode(state)
                        blocked = blocked_of(state)
                        pipe.multi()
                        if raw is None or doc != raw.decode():
                            pipe.set(self.key, doc)
                            pipe.set(self.blocked_key, repr(blocked))
                            if blocked != was:
                                pipe.publish(self.channel, repr(blocked))
                        pipe.execute()
                        if blocked != was:
                            self._blocked = blocked
                        return result
                    except self._watch_error:
                        continue
        except self._errors as exc:
            raise unavailable(self.description, exc) from None
        raise RuntimeFailure(
            f"the shared rate-limit store ({self.description}) stayed contended for "
            f"{self.MAX_CONFLICTS} attempts; refusing to send requests without a budget",
            code="RATE_STORE_UNAVAILABLE",
        )

    def read(self) -> HostState:
        try:
            state = _decode(self._client.get(self.key))
        except self._errors as exc:
            raise unavailable(self.description, exc) from None
        self._blocked = blocked_of(state)
        return state

    def blocked_until(self) -> float:
        return self._blocked  # kept current by the listener thread

    def _read_blocked(self) -> None:
        raw = self._client.get(self.blocked_key)
        self._blocked = float(raw) if raw else 0.0

    def _listen(self) -> None:
        """Keep ``_blocked`` current from the channel and the key; resubscribe after errors."""
        while not self._closed.is_set():
            pubsub = None
            try:
                pubsub = self._client.pubsub()
                pubsub.subscribe(self.channel)
                checked_at = math.inf  # read the key once the subscription is confirmed
                while not self._closed.is_set():
                    msg = pubsub.get_message(timeout=self.LISTEN_POLL_S)
                    if msg is not None and msg.get("type") == "subscribe":
                        checked_at = -math.inf  # from now on nothing is missed
                    elif msg is not None and msg.get("type") == "message":
                        # blocks only grow; the key (read every second) has the last word
                        self._blocked = max(self._blocked, float(msg["data"]))
                    if time.monotonic() - checked_at >= self.RECHECK_S:
                        self._read_blocked()
                        checked_at = time.monotonic()
                        self._live = True
            except (*self._errors, ValueError):
                self._live = False
                self._closed.wait(self.RESUBSCRIBE_S)
            finally:
                self._live = False
                if pubsub is not None:
                    with contextlib.suppress(*self._errors):
                        pubsub.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.join(timeout=2 * self.LISTEN_POLL_S + self.SOCKET_TIMEOUT_S)
        with contextlib.suppress(*self._errors):
            self._client.close()


def host_slug(host: str) -> str:
    """A file-name-safe form of ``host:port``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", host).strip("_") or "default"


def open_store(spec: str, host: str) -> Store:
    """The store named by ``[limits] store`` for exchange ``host``."""
    if spec == "memory":
        return MemoryStore(host)
    if spec == "sqlite":
        return SqliteStore(limits_dir() / f"{host_slug(host)}.sqlite", host)
    if spec.startswith(("redis://", "rediss://")):
        return RedisStore(spec, host)
    raise BadInput(f'[limits] store: got {spec!r}, expected "sqlite", "memory" or "redis://..."')
