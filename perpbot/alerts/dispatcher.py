"""The sender threads: a bounded queue, dedup and rate limit, a courier per destination.

``submit`` never blocks and never raises: the trading loop and the kill path only pay for a
``put_nowait``. A full queue drops the alert and counts it (the subscriber reports how many
were dropped). One thread deduplicates; each destination then has its own courier thread
and queue, so a destination that hangs delays nobody else. A courier retries a failure
with exponential backoff (tenacity) and reports every outcome to ``on_result`` (the
subscriber records it as a decision: a failed delivery is never lost silently).

Dedup and rate limit, per alert key (the code and the symbol): the first alert of a key is
sent after ``coalesce_s`` (critical ones at once); repeats that arrive before it is sent
or within ``dedup_window_s`` after it are counted, and sent as ONE alert with the count when
the window ends. A storm of 429s is therefore one alert, then at most one per window.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryError, Retrying, stop_after_attempt, wait_exponential

from perpbot.alerts.deliver import Delivery, send
from perpbot.alerts.rules import Alert

Sender = Callable[[str, str, str], tuple[bool, str]]


@dataclass(slots=True)
class _Pending:
    alert: Alert
    due: float


class _Stop:
    pass


class Dispatcher:
    def __init__(
        self,
        destinations: dict[str, str],
        *,
        on_result: Callable[[Alert, Delivery], None],
        queue_size: int = 256,
        dedup_window_s: float = 60.0,
        coalesce_s: float = 2.0,
        attempts: int = 4,
        base_delay_s: float = 0.5,
        max_delay_s: float = 30.0,
        sender: Sender = send,
    ) -> None:
        self.on_result = on_result
        self.dedup_window_s = dedup_window_s
        self.coalesce_s = coalesce_s
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.sender = sender
        self.dropped = 0
        self._couriers = [
            _Courier(self, name, url, queue_size) for name, url in destinations.items()
        ]
        self._q: queue.Queue[Alert | _Stop] = queue.Queue(maxsize=queue_size)
        self._pending: dict[str, _Pending] = {}
        self._window_end: dict[str, float] = {}
        self._thread = threading.Thread(target=self._loop, name="perpbot-alerts", daemon=True)
        self._started = False

    # -- the publisher's side (never blocks) ---------------------------------------------------
    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()
            for courier in self._couriers:
                courier.thread.start()

    def submit(self, alert: Alert) -> bool:
        try:
            self._q.put_nowait(alert)
        except queue.Full:
            self.dropped += 1
            return False
        return True

    def close(self, timeout: float = 5.0) -> bool:
        """Send what is pending (windows cut short) and stop; False if that took longer than
        ``timeout`` (the thread is a daemon: it never holds the process up)."""
        if not self._started:
            return True
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._q.put(_Stop(), timeout=max(deadline - time.monotonic(), 0.01))
                break
            except queue.Full:
                if time.monotonic() >= deadline:
                    return False
        self._thread.join(max(deadline - time.monotonic(), 0.0))
        for courier in self._couriers:
            with contextlib.suppress(queue.Full):  # a full one is stuck: not waited for
                courier.q.put_nowait(None)
        for courier in self._couriers:
            courier.thread.join(max(deadline - time.monotonic(), 0.0))
        return not any(t.is_alive() for t in (self._thread, *(c.thread for c in self._couriers)))

    # -- the thread --------------------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            now = time.monotonic()
            due = min((p.due for p in self._pending.values()), default=now + 0.5)
            try:
                item = self._q.get(timeout=min(max(due - now, 0.0), 0.5))
            except queue.Empty:
                item = None
            if isinstance(item, _Stop):
                for key in list(self._pending):
                    self._send_pending(key)
                return
            if item is not None:
                self._add(item, time.monotonic())
            now = time.monotonic()
            for key in [k for k, p in self._pending.items() if p.due <= now]:
                self._send_pending(key)

    def _add(self, alert: Alert, now: float) -> None:
        held = self._pending.get(alert.key)
        if held is not None:  # a repeat before it went out: count it, keep the latest words
            held.alert.count += alert.count
            held.alert.sentence = alert.sentence
            if alert.severity == "critical" and held.alert.severity != "critical":
                held.alert.severity = "critical"
                held.due = min(held.due, now)
            return
        window_end = self._window_end.get(alert.key, 0.0)
        if window_end > now:
            self._pending[alert.key] = _Pending(alert, window_end)
        else:
            delay = 0.0 if alert.severity == "critical" else self.coalesce_s
            self._pending[alert.key] = _Pending(alert, now + delay)

    def _send_pending(self, key: str) -> None:
        pending = self._pending.pop(key)
        self._window_end[key] = time.monotonic() + self.dedup_window_s
        self._deliver(pending.alert)

    def _deliver(self, alert: Alert) -> None:
        for courier in self._couriers:
            if courier.name not in alert.exclude:
                courier.take(alert)

    def report(self, alert: Alert, result: Delivery) -> None:
        with contextlib.suppress(Exception):  # recording must not kill a sender thread
            self.on_result(alert, result)

    def with_retries(self, name: str, url: str, title: str, body: str) -> Delivery:
        attempts = 0
        last_error = ""

        def once() -> None:
            nonlocal attempts, last_error
            attempts += 1
            ok, error = self.sender(url, title, body)
            if not ok:
                last_error = error
                raise _Failed(error)

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.base_delay_s, max=self.max_delay_s),
            reraise=False,
        )
        try:
            retrying(once)
        except RetryError:
            return Delivery(name, False, attempts, last_error)
        return Delivery(name, True, attempts)


class _Courier:
    """One destination's queue and thread."""

    def __init__(self, owner: Dispatcher, name: str, url: str, queue_size: int) -> None:
        self.owner = owner
        self.name = name
        self.url = url
        self.q: queue.Queue[Alert | None] = queue.Queue(maxsize=queue_size)
        self.thread = threading.Thread(
            target=self._loop, name=f"perpbot-alerts-{name}", daemon=True
        )

    def take(self, alert: Alert) -> None:
        try:
            self.q.put_nowait(alert)
        except queue.Full:
            why = "its queue is full (the destination is too slow or down)"
            self.owner.report(alert, Delivery(self.name, False, 0, why))

    def _loop(self) -> None:
        while True:
            alert = self.q.get()
            if alert is None:
                return
            result = self.owner.with_retries(self.name, self.url, alert.title(), alert.body())
            self.owner.report(alert, result)


class _Failed(Exception):
    pass
