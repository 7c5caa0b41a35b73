"""The alert subscriber: decisions on the bus in, alerts to the dispatcher out.

``attach(bus, section, identity)`` is all a run needs: it subscribes to the bus and starts
the sender threads. Delivery outcomes come back from them into an outbox and are
published on the bus from the publisher's own thread (the next event, or ``close``) as
``ALERT_SENT`` / ``ALERT_DELIVERY_FAILED`` decisions, so they reach the journal, the signed
log and the metrics like any other decision. A failure is also appended at once to
``<state>/alerts/failed.jsonl`` (it is never lost, even if no other event follows).
"""

from __future__ import annotations

import collections
import contextlib
import json
import time
from pathlib import Path
from typing import Any

from perpbot.alerts.deliver import Delivery
from perpbot.alerts.destinations import effective, load_urls
from perpbot.alerts.dispatcher import Dispatcher
from perpbot.alerts.rules import Alert, Filters, alert_key, classify, silent
from perpbot.config import AlertsSection
from perpbot.errors import EXIT_FAIL, GUARD_EXIT_CODES
from perpbot.events import Decision, Event, EventBus
from perpbot.identity import RunIdentity
from perpbot.paths import state_dir

LAYER = "alerts"


def failed_log_path() -> Path:
    folder = state_dir() / "alerts"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "failed.jsonl"


def record_failure(alert: Alert, result: Delivery) -> None:
    line = {
        "ts": time.time(),
        "code": alert.code,
        "destination": result.destination,
        "attempts": result.attempts,
        "error": result.error,
        "run_id": alert.run_id,
        "sentence": alert.sentence,
    }
    with open(failed_log_path(), "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, sort_keys=True) + "\n")


class AlertSubscriber:
    def __init__(
        self,
        bus: EventBus,
        section: AlertsSection,
        identity: RunIdentity,
        dispatcher: Dispatcher,
    ) -> None:
        self.bus = bus
        self.section = section
        self.identity = identity
        self.filters = Filters(
            min_severity=section.min_severity,
            include=tuple(section.include),
            exclude=tuple(section.exclude),
        )
        self.dispatcher = dispatcher
        self._outbox: collections.deque[Decision] = collections.deque()
        self._draining = False
        self._fills_seen = 0
        self._last_summary = time.monotonic()
        self._reported_drops = 0
        self.ended = False  # run_ended was called

    # -- the bus (publisher's thread: never blocks) ----------------------------------------------
    def on_event(self, event: Event) -> None:
        if self._outbox and not self._draining:
            self.drain()
        if not isinstance(event, Decision) or silent(event):
            return
        severity = classify(event)
        if not self.filters.wants(event.code, severity):
            return
        if event.code == "ALERT_DELIVERY_FAILED" and event.data.get("about") in (
            "ALERT_DELIVERY_FAILED",
            "ALERT_QUEUE_FULL",
        ):
            return  # a failure to report a failure: recorded, not re-sent (no loops)
        exclude = frozenset([event.data["destination"]]) if "destination" in event.data else None
        self.submit(event.code, severity or "info", event.sentence, alert_key(event), exclude)

    def submit(
        self,
        code: str,
        severity: str,
        sentence: str,
        key: str | None = None,
        exclude: frozenset[str] | None = None,
    ) -> None:
        alert = Alert(
            code=code,
            severity=severity,
            sentence=sentence,
            key=key or code,
            bot=self.identity.bot,
            run_id=self.identity.run_id,
            machine=self.identity.machine,
            exclude=exclude or frozenset(),
        )
        self.dispatcher.submit(alert)  # a full queue counts the drop: drain() reports it

    def drain(self) -> None:
        """Publish the delivery outcomes the sender threads queued (publisher's thread)."""
        self._draining = True
        try:
            while self._outbox:
                # a subscriber that raises on this record must not detach the alerts
                with contextlib.suppress(Exception):
                    self.bus.publish(self._outbox.popleft())
            dropped = self.dispatcher.dropped
            if dropped > self._reported_drops:
                n, self._reported_drops = dropped - self._reported_drops, dropped
                self.bus.publish(
                    Decision(
                        LAYER,
                        "alert",
                        "ALERT_QUEUE_FULL",
                        f"{n} alert(s) were dropped because the alert queue was full "
                        f"(destinations slow or down); see the run's events for them",
                        {"dropped": n, "about": "ALERT_QUEUE_FULL"},
                    )
                )
        finally:
            self._draining = False

    # -- the couriers' callback ------------------------------------------------------------
    def on_result(self, alert: Alert, result: Delivery) -> None:
        if result.ok:
            self._outbox.append(
                Decision(
                    LAYER,
                    "info",
                    "ALERT_SENT",
                    f"alert {alert.code} sent to {result.destination}"
                    + (f" (after {result.attempts} attempts)" if result.attempts > 1 else ""),
                    {"destination": result.destination, "about": alert.code, "count": alert.count},
                )
            )
            return
        record_failure(alert, result)
        self._outbox.append(
            Decision(
                LAYER,
                "alert",
                "ALERT_DELIVERY_FAILED",
                f"alert {alert.code} could not be delivered to {result.destination} after "
                f"{result.attempts} attempts: {result.error or 'no detail'}",
                {
                    "destination": result.destination,
                    "about": alert.code,
                    "attempts": result.attempts,
                },
            )
        )

    # -- run hooks (the composition root calls these) --------------------------------------------
    def on_tick(self, fills: int, net_pnl: float | None, positions: dict[str, float]) -> None:
        """Fills (when ``fills`` is on) and the periodic summary, from the tick's snapshot."""
        if self.section.fills and fills > self._fills_seen:
            n = fills - self._fills_seen
            self.submit("RUN_FILL", "info", f"{n} new fill(s); {fills} this run")
        self._fills_seen = max(self._fills_seen, fills)
        every = self.section.summary_interval_s
        if every is not None and time.monotonic() - self._last_summary >= every:
            self._last_summary = time.monotonic()
            pos = ", ".join(f"{s} {a:g}" for s, a in positions.items() if a) or "flat"
            pnl = "unknown" if net_pnl is None else f"{net_pnl:+.2f} USDT"
            self.submit("RUN_SUMMARY", "info", f"net PnL {pnl}; {fills} fills; positions: {pos}")

    def run_ended(
        self, exit_code: int, end_reason: str, error: str | None, *, publish: bool = True
    ) -> None:
        """Alert a crashed run (exit 1) or one the kill switch or a guard ended (2, 3, 4).
        With ``publish`` off (the journal is closed) the alert goes straight to the sender."""
        self.ended = True
        if exit_code == EXIT_FAIL:
            code, sentence = "RUN_CRASHED", f"the run stopped on an error: {error or end_reason}"
        elif exit_code in GUARD_EXIT_CODES:
            code = "RUN_REFUSED"
            sentence = f"the run was stopped ({end_reason}): {error or 'see its events'}"
        else:
            return
        if publish:
            self.bus.publish(Decision("engine", "alert", code, sentence, {"exit_code": exit_code}))
        else:
            self.submit(code, "critical", sentence)

    def close(self, timeout: float = 5.0, *, publish: bool = True) -> None:
        """Send what is pending (at most ``timeout`` s) and stop. With ``publish`` off (the
        run's journal and signed log are already closed) the last outcomes are not put on
        the bus; failures are in ``alerts/failed.jsonl`` all the same."""
        self.bus.unsubscribe(self.on_event)
        if publish:
            self.drain()
        self.dispatcher.close(timeout)
        if publish:
            self._draining = True  # published now, without re-entering on_event
            try:
                while self._outbox:
                    self.bus.publish(self._outbox.popleft())
            finally:
                self._draining = False


def build_dispatcher(
    section: AlertsSection, on_result: Any, urls: dict[str, str], **overrides: Any
) -> Dispatcher:
    params: dict[str, Any] = {
        "queue_size": section.queue_size,
        "dedup_window_s": section.dedup_window_s,
    }
    params.update(overrides)
    return Dispatcher(urls, on_result=on_result, **params)


def attach(
    bus: EventBus, section: AlertsSection | None, identity: RunIdentity, **overrides: Any
) -> AlertSubscriber | None:
    """Subscribe a run's alerts to ``bus``; None when alerts are off or go nowhere."""
    cfg = effective(section)
    if not cfg.enabled or not cfg.destinations:
        return None
    urls = load_urls(list(cfg.destinations))
    holder: list[AlertSubscriber] = []
    dispatcher = build_dispatcher(cfg, lambda a, r: holder[0].on_result(a, r), urls, **overrides)
    sub = AlertSubscriber(bus, cfg, identity, dispatcher)
    holder.append(sub)
    bus.subscribe(sub.on_event)
    dispatcher.start()
    return sub
