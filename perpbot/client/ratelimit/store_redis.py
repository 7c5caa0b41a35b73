"""Sharing one budget across machines: ``[limits] store = "redis://host:port/db"``.

One Redis key per exchange host holds the same JSON document the SQLite store keeps; an
optimistic ``WATCH``/``MULTI`` transaction re-runs the (pure) budget maths when another
client wrote in between, so the arithmetic is identical to the local store's. The URL's
password, if any, is never shown: the store describes itself by host, port and db only.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from perpbot.client.ratelimit.state import HostState
from perpbot.client.ratelimit.store import blocked_of, unavailable
from perpbot.errors import RuntimeFailure

T = TypeVar("T")
MAX_CONFLICTS = 200
SOCKET_TIMEOUT_S = 2.0


def describe_url(url: str) -> str:
    parts = urlsplit(url)
    db = parts.path.lstrip("/") or "0"
    return f"redis {parts.hostname}:{parts.port or 6379}/{db}"


class RedisStore:
    def __init__(self, url: str, host: str) -> None:
        import redis

        self.description = describe_url(url)
        self.key = f"perpbot:limits:{host}"
        self.blocked_key = self.key + ":blocked"
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._watch_error = redis.WatchError
        try:
            self._client: Any = redis.Redis.from_url(
                url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
            )
        except (ValueError, *self._errors) as exc:
            raise unavailable(self.description, exc) from None

    @staticmethod
    def _decode(raw: Any) -> HostState:
        return HostState.from_dict(json.loads(raw) if raw else None)

    def transact(self, fn: Callable[[HostState], T]) -> T:
        try:
            with self._client.pipeline() as pipe:
                for _ in range(MAX_CONFLICTS):
                    try:
                        pipe.watch(self.key)
                        raw = pipe.get(self.key)
                        state = self._decode(raw)
                        result = fn(state)
                        doc = json.dumps(state.to_dict(), separators=(",", ":"))
                        pipe.multi()
                        if raw is None or doc != raw.decode():
                            pipe.set(self.key, doc)
                            pipe.set(self.blocked_key, repr(blocked_of(state)))
                        pipe.execute()
                        return result
                    except self._watch_error:
                        continue
        except self._errors as exc:
            raise unavailable(self.description, exc) from None
        raise RuntimeFailure(
            f"the shared rate-limit store ({self.description}) stayed contended for "
            f"{MAX_CONFLICTS} attempts; refusing to send requests without a budget",
            code="RATE_STORE_UNAVAILABLE",
        )

    def read(self) -> HostState:
        try:
            return self._decode(self._client.get(self.key))
        except self._errors as exc:
            raise unavailable(self.description, exc) from None

    def blocked_until(self) -> float:
        try:
            raw = self._client.get(self.blocked_key)
        except self._errors as exc:
            raise unavailable(self.description, exc) from None
        return float(raw) if raw else 0.0

    def close(self) -> None:
        with contextlib.suppress(*self._errors):
            self._client.close()
