"""The log as an event-bus subscriber: what every command that talks to an exchange attaches.

    from perpbot.audit.subscriber import attach_to_bus

    audit = attach_to_bus(bus, run_id=run_id, profile=profile, command="kill")
    try:
        ...  # build the client with the same bus, make the calls
    finally:
        audit.close()

The logger is subscribed with ``critical=True``: if a record cannot be written the error
reaches whoever published the event, so no request goes on unrecorded. Under `perpbot run`
it also records each fill and order change the engine learns (``perpbot.engine.events``,
from the user data stream or a REST reconcile, once each): on streams these reach the run
without a request, and the log must still hold them. They are sealed by the next
checkpoint (at most ``checkpoint_interval_s`` later). A timer thread seals
unsigned records every ``checkpoint_interval_s`` seconds; ``close()`` writes the final
signed record and unsubscribes.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast

from perpbot.audit.keystore import KeyStore
from perpbot.audit.records import (
    RecordContext,
    event_body,
    fill_body,
    is_order_related,
    order_body,
)
from perpbot.audit.writer import AuditWriter, WriterSettings
from perpbot.errors import RuntimeFailure
from perpbot.events import Event, EventBus
from perpbot.paths import logs_dir

if TYPE_CHECKING:
    from perpbot.config import AuditSection, StrategyFile
    from perpbot.engine.events import EngineEvent, EngineEvents, FillEvent, OrderEvent
    from perpbot.engine.hooks import AfterStop, Background
    from perpbot.engine.output import RunOutput


class AuditRun(Protocol):
    """What the signed log of `perpbot run` uses of a run."""

    run_id: str
    config: StrategyFile
    bus: EventBus
    output: RunOutput
    engine_events: EngineEvents  # each fill and order change, once
    summary_extras: dict[str, Any]
    end_reason: str
    background: Background
    after_stop: AfterStop


class AuditLogger:
    """Records bus events in a run's signed log. ``close()`` is idempotent."""

    def __init__(self, bus: EventBus, writer: AuditWriter) -> None:
        self.bus = bus
        self.writer = writer
        self._stop = threading.Event()
        self._timer = threading.Thread(target=self._tick, name="perpbot-audit", daemon=True)
        self._subscriber = self.on_event  # one bound method: unsubscribe compares identity
        bus.subscribe(self._subscriber, critical=True)
        self._timer.start()

    @property
    def dir(self) -> Path:
        return self.writer.dir

    @property
    def fingerprint(self) -> str:
        return self.writer.fingerprint

    @property
    def notes(self) -> list[str]:
        """What the writer found when joining the chain (a crashed run's tail, a gap)."""
        return self.writer.notes

    def on_event(self, event: Event) -> None:
        body = event_body(event, self.writer.ctx)
        if body is not None:
            self.writer.append(body, order_related=is_order_related(body))

    def on_engine_event(self, event: EngineEvent) -> None:
        """A fill or an order change (``perpbot.engine.events``). A log that cannot write
        is reported by the next request's record (critical), not from inside the stream's
        handler."""
        ctx, now, mono = self.writer.ctx, time.time(), time.monotonic()
        if event.kind == "fill":  # by kind: perpbot.engine is not imported here (`kill`)
            fill = cast("FillEvent", event)
            body = fill_body(fill.fill.to_dict(), fill.source, ctx, now, mono)
        else:
            order = cast("OrderEvent", event)
            body = order_body(
                client_order_id=order.client_order_id,
                symbol=order.symbol,
                status=order.status,
                filled=order.filled,
                order=order.order,
                source=order.source,
                ctx=ctx,
                ts=now,
                mono=mono,
            )
        with contextlib.suppress(RuntimeFailure):
            self.writer.append(body)

    def _tick(self) -> None:
        interval = self.writer.settings.checkpoint_interval_s
        while not self._stop.wait(interval):
            try:
                self.writer.checkpoint_if_due()
                self.writer.flush_head()
            except Exception:
                continue  # a broken writer: the next append reports it to the publisher

    def close(self, reason: str = "close") -> None:
        self.bus.unsubscribe(self._subscriber)
        self._stop.set()
        if self._timer.is_alive() and self._timer is not threading.current_thread():
            self._timer.join(timeout=5)
        self.writer.close(reason)

    def __enter__(self) -> AuditLogger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def attach_to_bus(
    bus: EventBus,
    *,
    run_id: str,
    profile: str | None,
    command: str,
    settings: AuditSection | None = None,
    root: Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> AuditLogger:
    """Start the run's signed log and subscribe it to ``bus`` (critical).

    ``settings`` is the ``[audit]`` table when the command has a strategy file (defaults
    otherwise); ``root`` overrides the logs dir (tests); ``warn`` receives the warning
    line about a missing OS keyring (default: printed once on stderr). Raises
    RuntimeFailure when the log cannot be created: a command must not talk to an exchange
    without its log.
    """
    writer = AuditWriter(
        RecordContext(run=run_id, profile=profile, command=command),
        WriterSettings.from_section(settings),
        KeyStore(warn) if warn is not None else KeyStore(),
        root if root is not None else logs_dir(),
    )
    return AuditLogger(bus, writer)


def attach_runner(runner: AuditRun) -> AuditLogger | None:
    """`perpbot run`: log every request of the run; closed last, after the final cancels."""
    cfg = runner.config.audit
    if not cfg.enabled:
        return None
    warnings: list[str] = []
    logger = attach_to_bus(
        runner.bus,
        run_id=runner.run_id,
        profile=runner.config.exchange.profile,
        command="run",
        settings=cfg,
        warn=lambda w: warnings.append(w) if w not in warnings else None,
    )

    async def announce(r: AuditRun) -> None:
        """Shown once the run has really started: a refusal stays a single error line."""
        for w in warnings:
            r.output.warn(w)
        for note in logger.notes:
            print(f"perpbot: note: audit log: {note}", file=sys.stderr, flush=True)

    runner.background.append(announce)
    runner.summary_extras["audit"] = {"log": str(logger.dir), "key": logger.fingerprint}
    on_engine_event = logger.on_engine_event  # one bound method: unsubscribe compares it
    runner.engine_events.subscribe(on_engine_event)

    def close(r: AuditRun) -> None:
        r.engine_events.unsubscribe(on_engine_event)
        logger.close(r.end_reason)

    runner.after_stop.append(close)
    return logger
