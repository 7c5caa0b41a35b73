"""The log as an event-bus subscriber: what every command that talks to an exchange attaches.

    from perpbot.audit.subscriber import attach_to_bus

    audit = attach_to_bus(bus, run_id=run_id, profile=profile, command="kill")
    try:
        ...  # build the client with the same bus, make the calls
    finally:
        audit.close()

The logger is subscribed with ``critical=True``: if a request's record cannot be written the
error reaches whoever made the request. A log that cannot write (a full disk) holds what it
could not write and stops the run (``on_broken``); until the run ends only risk-reducing
requests leave (``wire_look``: the stop's listings and cancels of this run's orders, the
dead-man countdown, reduce-only orders), each held in memory and written later as a signed
``gap`` record (perpbot.audit.gap); ordinary requests are refused before they leave.

Under `perpbot run` it also records each fill and order change the engine learns
(``perpbot.engine.events``, from the user data stream or a REST reconcile, once each): on
streams these reach the run without a request, and the log must still hold them. They are
sealed by the next checkpoint (at most ``checkpoint_interval_s`` later). A timer thread seals
unsigned records every ``checkpoint_interval_s`` seconds; ``close()`` writes the final
signed record and unsubscribes.
"""

from __future__ import annotations

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
from perpbot.audit.writer import AuditWriter, NotSealed, WriterSettings
from perpbot.client.errors import NotSent
from perpbot.client.request import is_reducing_risk
from perpbot.client.transport import CURRENT_REQUEST
from perpbot.errors import EXIT_FAIL, PerpbotError, RuntimeFailure
from perpbot.events import Decision, Event, EventBus, ExchangeCall
from perpbot.paths import logs_dir

if TYPE_CHECKING:
    from perpbot.client.request import HttpRecord, Request
    from perpbot.client.wire import HttpObservers
    from perpbot.config import AuditSection, StrategyFile
    from perpbot.engine.events import EngineEvent, EngineEvents, FillEvent, OrderEvent
    from perpbot.engine.hooks import AfterStop, Background, OnConnected
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
    exit_code: int
    fatal: PerpbotError | None
    on_connected: OnConnected
    background: Background
    after_stop: AfterStop

    @property
    def observers(self) -> HttpObservers: ...  # the transport's HTTP hooks
    def fail(self, error: PerpbotError) -> None: ...


ORDERS_LEFT_CODE = "ENGINE_ORDERS_LEFT"  # the stop's sentence: what it left, to whom


class LogCannotRecord(NotSent, RuntimeFailure):
    """An ordinary request held back: the log cannot record it (nothing left)."""


class AuditLogger:
    """Records bus events in a run's signed log. ``close()`` is idempotent."""

    def __init__(self, bus: EventBus, writer: AuditWriter) -> None:
        self.bus = bus
        self.writer = writer
        # called once, with what could not be written, when the log first cannot write
        self.on_broken: Callable[[str], None] | None = None
        self.broke: str | None = None
        self.cancelled: list[str] = []  # this run's orders cancelled since the log broke
        self.left: str | None = None  # the stop's sentence on what it left, if it did
        self.sent_unrecorded = 0  # requests that went out while the log could not write
        # of those, ordinary ones sent before the log broke and answered after (methods)
        self.answered_late: list[str] = []
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
        if body is None:
            return
        try:
            self.writer.append(body, order_related=is_order_related(body))
        except RuntimeFailure as exc:
            if self.writer.closed and not self.writer.broken:
                raise
            if not isinstance(exc, NotSealed):  # (a written record is not held again)
                self.writer.hold(body)
                if isinstance(event, ExchangeCall):
                    self.sent_unrecorded += 1
                    if not event.risk_reducing:
                        self.answered_late.append(event.method)
            self._broken()
            if not self._may_go_on(event):
                raise
        self._note_outcome(event)

    def _may_go_on(self, event: Event) -> bool:
        """Whether the publisher goes on although ``event`` could not be written (it is
        held): a risk-reducing request that went out; a decision made while reducing risk
        (the kill switch, the stop's cancels) or, under a run, any decision: the stop must
        be able to say what it did. Otherwise the publisher learns the log broke."""
        if isinstance(event, ExchangeCall):
            return event.risk_reducing
        request = CURRENT_REQUEST.get()
        reducing = is_reducing_risk() or (request is not None and request.risk_reducing)
        return reducing or self.on_broken is not None

    def wire_look(self, record: HttpRecord, request: Request | None) -> None:
        """Transport hook, the first look before a request leaves (before the limiter
        charges it): while the log cannot write, only risk-reducing requests go (each held,
        written later as a gap)."""
        if self.writer.broken and request is not None and not request.risk_reducing:
            raise LogCannotRecord(
                f"not sent: {request.describe()}: the audit log cannot record requests "
                f"({self.broke or 'the disk is full'}); only cancels and the dead-man "
                "countdown leave until the run has stopped",
                code="AUDIT_CANNOT_RECORD",
            )

    def _broken(self) -> None:
        if self.broke is not None:
            return
        held = self.writer.held
        self.broke = held.reason if held is not None else "the log cannot write"
        if self.on_broken is not None:
            self.on_broken(self.broke)

    def _note_outcome(self, event: Event) -> None:
        """What the stop did while the log could not record (for the run's last line): the
        cancels since it broke, and what the stop left (whenever it said so)."""
        if isinstance(event, ExchangeCall) and self.broke is not None:
            cid = event.params.get("clientOrderId") or event.params.get("origClientOrderId")
            if event.method == "cancel_order" and event.ok and cid and cid not in self.cancelled:
                self.cancelled.append(str(cid))
        elif isinstance(event, Decision) and event.code == ORDERS_LEFT_CODE:
            self.left = event.sentence

    def outcome(self) -> str:
        """After close: what could not be written, what went out unrecorded and where it is
        recorded now, which orders were cancelled and which left to whom (one sentence)."""
        w = self.writer
        parts = [f"the audit log cannot record requests: {self.broke}"]
        if self.sent_unrecorded:
            if w.emergency is not None:
                where = f"their records are in {w.emergency} (signed; the log took nothing)"
            elif w.gaps:
                seqs = ", ".join(str(s) for s in w.gaps)
                where = f"recorded late, from memory, in the log's gap record (seq {seqs})"
            else:
                where = "recorded nowhere (nothing writable)"
            what = "the stop's listings and cancels, the dead-man countdown: nothing that adds risk"
            if self.answered_late:
                what = (
                    f"{len(self.answered_late)} of them sent before the log broke and answered "
                    f"after ({', '.join(sorted(set(self.answered_late)))}); the rest the stop's "
                    "listings and cancels, the dead-man countdown"
                )
            parts.append(f"{self.sent_unrecorded} request(s) went out unrecorded ({what}): {where}")
        if self.cancelled:
            parts.append(f"cancelled this run's orders {', '.join(self.cancelled)}")
        parts.append(self.left or "no order of this run is left open (confirmed at the exchange)")
        return "; ".join(parts)

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
        try:
            self.writer.append(body)
        except RuntimeFailure:
            if self.writer.broken:
                self.writer.hold(body)

    def _tick(self) -> None:
        interval = self.writer.settings.checkpoint_interval_s
        while not self._stop.wait(interval):
            try:
                if self.writer.broken:
                    self.writer.resume()  # the disk takes records again: write the gap
                self.writer.checkpoint_if_due()
                self.writer.flush_head()
            except Exception:
                if self.writer.broken:
                    self._broken()

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

    async def guard(r: AuditRun) -> None:
        """While the log cannot write, only risk-reducing requests leave."""
        r.observers.add_before(logger.wire_look, first=True)

    runner.on_connected.append(guard)
    logger.on_broken = lambda what: runner.fail(
        RuntimeFailure(f"the audit log cannot record requests: {what}", code="AUDIT_BROKEN")
    )
    runner.background.append(announce)
    runner.summary_extras["audit"] = {"log": str(logger.dir), "key": logger.fingerprint}
    on_engine_event = logger.on_engine_event  # one bound method: unsubscribe compares it
    runner.engine_events.subscribe(on_engine_event)

    def close(r: AuditRun) -> None:
        r.engine_events.unsubscribe(on_engine_event)
        try:
            logger.close(r.end_reason)
        finally:
            if logger.broke is not None:  # the run's last line says what the stop did
                r.fatal = RuntimeFailure(logger.outcome(), code="AUDIT_BROKEN")
                r.exit_code = r.exit_code or EXIT_FAIL

    runner.after_stop.append(close)
    return logger
