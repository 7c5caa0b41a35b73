"""Sharing one budget across machines: ``[limits] store = "redis://host:port/db"``.

One Redis key per exchange host holds the same JSON document the SQLite store keeps; an
optimistic ``WATCH``/``MULTI`` transaction re-runs the (pure) budget maths when another
client wrote in between, so the arithmetic is identical to the local store's. The URL's
password, if any, is never shown: the store describes itself by host, port and db only.

Every request asks whether the host is blocked (Retry-After, ban). A Redis round trip per
request would cost more than the request's own bookkeeping and stall the event loop, so
the answer is kept here: a transaction that changes it also publishes it on a channel, a
listener thread subscribed to that channel keeps it current, and the key itself is read
again at most every second (and at once whenever the subscription is down or has just
been made, since Redis pub/sub drops what it cannot deliver).
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from perpbot.client.ratelimit.state import HostState
from perpbot.client.ratelimit.store import blocked_of, unavailable
from perpbot.errors import RuntimeFailure

T = TypeVar("T")
MAX_CONFLICTS = 200
SOCKET_TIMEOUT_S = 2.0
RECHECK_S = 1.0  # with a live subscription, the block key itself is read this often
LISTEN_POLL_S = 0.2  # the listener looks for messages (and for close) this often
RESUBSCRIBE_S = 0.5  # after a lost subscription, try again after this long


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
        self.channel = self.key + ":blocked:changes"
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._watch_error = redis.WatchError
        try:
            self._client: Any = redis.Redis.from_url(
                url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
            )
        except (ValueError, *self._errors) as exc:
            raise unavailable(self.description, exc) from None
        # the block time as last seen (a message, a read or our own transaction), when the
        # key was last read, and whether the subscription is up
        self._blocked = 0.0
        self._checked_at = -math.inf
        self._live = False
        self._closed = threading.Event()
        self._listener = threading.Thread(
            target=self._listen, name="perpbot-redis-blocks", daemon=True
        )
        self._listener.start()

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
                        was = blocked_of(state)
                        result = fn(state)
                        doc = json.dumps(state.to_dict(), separators=(",", ":"))
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
            f"{MAX_CONFLICTS} attempts; refusing to send requests without a budget",
            code="RATE_STORE_UNAVAILABLE",
        )

    def read(self) -> HostState:
        try:
            return self._decode(self._client.get(self.key))
        except self._errors as exc:
            raise unavailable(self.description, exc) from None

    def blocked_until(self) -> float:
        if self._live and time.monotonic() - self._checked_at < RECHECK_S:
            return self._blocked  # kept current by the listener
        try:
            raw = self._client.get(self.blocked_key)
        except self._errors as exc:
            raise unavailable(self.description, exc) from None
        self._blocked = float(raw) if raw else 0.0
        self._checked_at = time.monotonic()
        return self._blocked

    def _listen(self) -> None:
        """Keep ``_blocked`` current from the channel; resubscribe after any error."""
        while not self._closed.is_set():
            pubsub = None
            try:
                pubsub = self._client.pubsub()
                pubsub.subscribe(self.channel)
                while not self._closed.is_set():
                    msg = pubsub.get_message(timeout=LISTEN_POLL_S)
                    if msg is None:
                        continue
                    if msg.get("type") == "subscribe":  # from now on nothing is missed:
                        self._checked_at = -math.inf  # read what was written before
                        self._live = True
                    elif msg.get("type") == "message":
                        # blocks only grow; the key itself (read every second) has the
                        # last word should one ever shrink
                        self._blocked = max(self._blocked, float(msg["data"]))
            except (*self._errors, ValueError):
                self._live = False
                self._closed.wait(RESUBSCRIBE_S)
            finally:
                self._live = False
                if pubsub is not None:
                    with contextlib.suppress(*self._errors):
                        pubsub.close()

    def close(self) -> None:
        self._closed.set()
        self._listener.join(timeout=2 * LISTEN_POLL_S + SOCKET_TIMEOUT_S)
        with contextlib.suppress(*self._errors):
            self._client.close()
