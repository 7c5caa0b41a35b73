"""Events: the explainability backbone.

Pipeline layers never print or write logs. They publish events on a bus: a ``Decision``
(deny, reject, wait, tighten, recover, retry, trip, ban, alert...) with a reason code and a
sentence a trader understands, or an ``ExchangeCall`` (one exchange request and its
outcome). Subscribers (the signed request log, the status publisher, monitors, the live
panel) do the rest, so adding a consumer touches no layer.
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Action = Literal[
    "deny",  # a scope gate refused
    "reject",  # a risk check refused
    "wait",  # the limiter held a request back
    "tighten",  # a budget was cut
    "recover",  # a budget was raised back
    "ban",  # the exchange banned us (418)
    "retry",  # a request is being retried
    "resolve",  # an unknown order outcome was resolved by lookup
    "trip",  # the kill switch tripped
    "act",  # the kill switch or engine acted (cancelled, flattened)
    "alert",  # a monitor saw something unusual
    "warn",  # something the trader must see at once (printed on stderr by a run)
    "info",  # anything else worth recording with a reason
]


@dataclass(frozen=True, slots=True)
class Decision:
    """A guard's decision, explained."""

    layer: str
    action: Action
    code: str
    sentence: str
    data: dict[str, Any] = field(default_factory=dict)
    ts: float = field(default_factory=time.time)

    kind: str = "decision"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class ExchangeCall:
    """One exchange request and its outcome. Subscribers treat it as read-only.

    ``params`` must already be redacted (``perpbot.redact.safe_params``): it is built from an
    allow-list where the event is made, never scrubbed afterwards.
    """

    request_id: int
    method: str
    http_method: str | None
    path: str | None
    params: dict[str, Any]
    status: int | None
    ok: bool
    error_code: int | None = None
    error_class: str | None = None
    latency_ms: float = 0.0
    rate_headers: dict[str, str] = field(default_factory=dict)
    symbol: str | None = None
    intent: str | None = None
    ts: float = field(default_factory=time.time)
    mono: float = field(default_factory=time.monotonic)
    kind: str = "exchange"
    risk_reducing: bool = False  # a cancel, the dead-man countdown, reduce-only (Request)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


Event = Decision | ExchangeCall
Subscriber = Callable[[Event], None]


class EventBus:
    """Synchronous fan-out to subscribers.

    Subscribers run in the publisher's thread, in subscription order. A subscriber that
    raises is reported on stderr once and skipped afterwards, unless it was subscribed as
    ``critical`` (the signed log), in which case the error reaches the publisher: a request
    that cannot be recorded must not silently go ahead.
    """

    def __init__(self) -> None:
        # replaced, never mutated: publish reads it without the lock (copy-on-write)
        self._subs: tuple[tuple[Subscriber, bool], ...] = ()
        self._broken: set[int] = set()
        self._lock = threading.Lock()
        # the next request id (1, 2, ...): a counter's own __next__, no Python call
        self.next_request_id: Callable[[], int] = itertools.count(1).__next__

    @property
    def subscribed(self) -> bool:
        """Whether anyone listens: a publisher may skip building an event nobody reads."""
        return bool(self._subs)

    def subscribe(self, fn: Subscriber, *, critical: bool = False) -> None:
        with self._lock:
            self._subs = (*self._subs, (fn, critical))

    def unsubscribe(self, fn: Subscriber) -> None:
        with self._lock:
            self._subs = tuple((f, c) for f, c in self._subs if f != fn)  # == : bound methods

    def publish(self, event: Event) -> None:
        for fn, critical in self._subs:
            if id(fn) in self._broken:
                continue
            try:
                fn(event)
            except Exception as exc:
                if critical:
                    raise
                self._broken.add(id(fn))
                print(
                    f"perpbot: warning: event subscriber {getattr(fn, '__qualname__', fn)!s} "
                    f"failed ({type(exc).__name__}) and was detached",
                    file=sys.stderr,
                )
