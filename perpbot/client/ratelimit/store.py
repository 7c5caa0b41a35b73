"""Shared budget stores: where every process using one exchange host keeps its counts.

A store does one thing: run ``fn(state)`` on the host's ``HostState`` atomically with
respect to every other process sharing it, and persist the result. The maths lives in
``budget``; the stores differ only in how they make the read-modify-write atomic:

- ``sqlite`` (default): a WAL-mode SQLite file per host under ``perpbot.paths.limits_dir()``
  (every process on this machine); ``BEGIN IMMEDIATE`` serialises writers.
- ``redis://host:port/db``: one key per host on a Redis server (every machine that uses
  it); ``WATCH``/``MULTI`` optimistic transactions.
- ``memory``: this process only (tests, or a single bot that wants no file).

Stores are synchronous on purpose: a 429 seen in a response hook (which ccxt calls
synchronously) must be in the shared state before the next request can leave, so the
write cannot be deferred to a task. Each call is one local transaction (~0.1 ms for SQLite).
A store that cannot be reached refuses the request (fail closed) with RATE_STORE_UNAVAILABLE.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from typing import Protocol, TypeVar

from perpbot.client.ratelimit.state import HostState
from perpbot.errors import BadInput, RuntimeFailure

T = TypeVar("T")


class Store(Protocol):
    description: str

    def transact(self, fn: Callable[[HostState], T]) -> T: ...

    def read(self) -> HostState: ...

    def blocked_until(self) -> float:
        """Until when the host is blocked (Retry-After or ban): a cheap read, every request."""
        ...

    def close(self) -> None: ...


def blocked_of(state: HostState) -> float:
    return max(state.blocked_until, state.banned_until)


def unavailable(description: str, exc: BaseException) -> RuntimeFailure:
    return RuntimeFailure(
        f"the shared rate-limit store ({description}) is unavailable: {type(exc).__name__}: "
        f"{exc}; refusing to send requests without a budget",
        code="RATE_STORE_UNAVAILABLE",
    )


class MemoryStore:
    """Process-local state, shared by every client of this process talking to one host."""

    _states: dict[str, HostState] = {}  # noqa: RUF012 - deliberately process-wide
    _lock = threading.Lock()

    def __init__(self, host: str) -> None:
        self.host = host
        self.description = f"memory ({host})"

    def transact(self, fn: Callable[[HostState], T]) -> T:
        with self._lock:
            state = self._states.setdefault(self.host, HostState())
            return fn(state)

    def read(self) -> HostState:
        with self._lock:
            return HostState.from_dict(self._states.setdefault(self.host, HostState()).to_dict())

    def blocked_until(self) -> float:
        state = self._states.get(self.host)
        return blocked_of(state) if state is not None else 0.0

    def close(self) -> None:
        return None

    @classmethod
    def reset(cls) -> None:
        with cls._lock:
            cls._states.clear()


def host_slug(host: str) -> str:
    """A file-name-safe form of ``host:port``."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", host).strip("_") or "default"


def open_store(spec: str, host: str) -> Store:
    """The store named by ``[limits] store`` for exchange ``host``."""
    if spec == "memory":
        return MemoryStore(host)
    if spec == "sqlite":
        from perpbot.client.ratelimit.store_sqlite import SqliteStore
        from perpbot.paths import limits_dir

        return SqliteStore(limits_dir() / f"{host_slug(host)}.sqlite", host)
    if spec.startswith(("redis://", "rediss://")):
        from perpbot.client.ratelimit.store_redis import RedisStore

        return RedisStore(spec, host)
    raise BadInput(f'[limits] store: got {spec!r}, expected "sqlite", "memory" or "redis://..."')
