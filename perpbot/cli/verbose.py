"""`--verbose`: every exchange call and decision on stderr, already redacted.

It prints only what the events carry; ExchangeCall params are allow-listed where the event
is built, so nothing printed here can contain a key or a signature.
"""

from __future__ import annotations

import sys

from perpbot.events import Decision, Event, EventBus, ExchangeCall


def attach_verbose(bus: EventBus) -> None:
    def show(event: Event) -> None:
        if isinstance(event, ExchangeCall):
            outcome = "ok" if event.ok else f"{event.error_class} code={event.error_code}"
            print(
                f"perpbot: call #{event.request_id} {event.method} {event.http_method or ''} "
                f"{event.path or ''} {event.params} -> {event.status} {outcome} "
                f"{event.latency_ms:.1f}ms {event.rate_headers}",
                file=sys.stderr,
                flush=True,
            )
        elif isinstance(event, Decision):
            print(
                f"perpbot: {event.layer} {event.action} {event.code}: {event.sentence}",
                file=sys.stderr,
                flush=True,
            )

    bus.subscribe(show)
