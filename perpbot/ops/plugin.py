"""Wiring the ops concerns (alerts, metrics, disk) into a run: the only module here that
knows the run (as ``OpsRun``). Each concern's own ``attach`` takes (bus, config section,
run identity); this adapts the run's hooks to them, so the composition root calls
``attach(runner)``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Protocol

from perpbot.alerts.subscriber import attach as attach_alerts
from perpbot.errors import EXIT_FAIL
from perpbot.identity import RunIdentity
from perpbot.kill.sentinel import new_entry, shared_watcher, write_sentinel
from perpbot.metrics.subscriber import attach as attach_metrics
from perpbot.ops.disk import attach as attach_disk
from perpbot.paths import state_dir
from perpbot.runfiles import compress_run

if TYPE_CHECKING:
    from perpbot.config import StrategyFile
    from perpbot.engine.hooks import AfterStop, AfterTick, Background, BeforeStop, OnConnected
    from perpbot.engine.journal import RunJournal
    from perpbot.engine.state import PositionSnapshot
    from perpbot.errors import PerpbotError
    from perpbot.events import EventBus


class OpsRun(Protocol):
    """What alerts, metrics and the disk monitor use of a run."""

    run_id: str
    config: StrategyFile
    bus: EventBus
    journal: RunJournal  # its folder: gzipped after the stop
    end_reason: str
    exit_code: int
    fatal: PerpbotError | None
    on_connected: OnConnected
    background: Background
    after_tick: AfterTick
    before_stop: BeforeStop
    after_stop: AfterStop

    @property
    def positions(self) -> dict[str, PositionSnapshot]: ...


def identity_of(runner: OpsRun) -> RunIdentity:
    cfg = runner.config
    return RunIdentity.of(
        run_id=runner.run_id,
        bot=cfg.strategy.name,
        exchange=cfg.exchange.id,
        url=cfg.exchange.url,
        run_dir=runner.journal.dir,
        symbols=cfg.strategy.symbols,
    )


def attach(runner: OpsRun) -> None:
    identity = identity_of(runner)
    _attach_alerts(runner, identity)
    _attach_metrics(runner, identity)
    _attach_disk(runner, identity)


def _attach_alerts(runner: OpsRun, identity: RunIdentity) -> None:
    sub = attach_alerts(runner.bus, runner.config.alerts, identity)
    if sub is None:
        return

    def after_tick(r: OpsRun, snap: dict[str, Any]) -> None:
        sub.on_tick(int(snap.get("fills") or 0), snap.get("net_pnl"), snap.get("positions") or {})

    async def before_stop(r: OpsRun) -> None:  # the bus and its journal are still open
        sub.run_ended(r.exit_code, r.end_reason, r.fatal.message if r.fatal else None)
        sub.drain()

    def after_stop(r: OpsRun) -> None:  # the signed log is closed: outcomes stay off the bus
        failure = sys.exc_info()[1]  # a run that failed before its main loop (connect)
        if not sub.ended and failure is not None:
            code = getattr(failure, "exit_code", EXIT_FAIL)
            message = getattr(failure, "message", None) or type(failure).__name__
            sub.run_ended(code, "failed to start", message, publish=False)
        sub.close(timeout=3.0, publish=False)

    runner.after_tick.append(after_tick)
    runner.before_stop.append(before_stop)
    runner.after_stop.append(after_stop)


def _positions(runner: OpsRun) -> dict[str, dict[str, Any]]:
    return {
        s: {
            "amount": p.amount,
            "mark_price": p.mark_price,
            "liquidation_price": p.liquidation_price,
        }
        for s, p in runner.positions.items()
    }


def _attach_metrics(runner: OpsRun, identity: RunIdentity) -> None:
    export = attach_metrics(runner.bus, runner.config.metrics, identity)
    if export is None:
        return

    async def on_connected(r: OpsRun) -> None:
        export.announce()

    def after_tick(r: OpsRun, snap: dict[str, Any]) -> None:
        export.on_tick(snap, _positions(r))

    def after_stop(r: OpsRun) -> None:
        export.close()

    runner.on_connected.append(on_connected)
    runner.after_tick.append(after_tick)
    runner.after_stop.append(after_stop)


def halt_this_bot(runner: OpsRun) -> Any:
    """The disk trip's kill hook until the kill switch exposes its automatic trip: a halt
    for this strategy, written like `perpbot kill --level halt`; held in-process when the
    sentinel cannot be written (the disk is the problem)."""

    def on_halt(code: str, sentence: str) -> None:
        reason = f"automatic trip {code} in run {runner.run_id}: {sentence}"
        entry = new_entry(
            "halt", reason, scope=f"run:{runner.config.strategy.name}", code=code, source="trip"
        )
        try:
            write_sentinel(entry)
        except OSError:
            shared_watcher().force(entry)

    return on_halt


def _attach_disk(runner: OpsRun, identity: RunIdentity) -> None:
    section = runner.config.disk
    monitor = attach_disk(
        runner.bus, section, identity, path=state_dir(), on_halt=halt_this_bot(runner)
    )

    async def watch(r: OpsRun) -> None:
        await monitor.watch()

    def after_stop(r: OpsRun) -> None:  # the journal is closed: its files are final
        if section.compress:
            compress_run(r.journal.dir, min_bytes=int(section.compress_min_kb * 1024))

    runner.background.append(watch)
    runner.after_stop.append(after_stop)
