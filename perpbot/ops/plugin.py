"""Wiring the ops concerns (alerts, metrics, disk) into a run: the only module here that
knows the runner. Each concern's own ``attach`` takes (bus, config section, run identity);
this adapts the runner's hooks to them, so the composition root calls ``attach(runner)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perpbot.ops.identity import RunIdentity

if TYPE_CHECKING:
    from perpbot.engine.runner import Runner


def identity_of(runner: Runner) -> RunIdentity:
    cfg = runner.config
    return RunIdentity.of(
        run_id=runner.run_id,
        bot=cfg.strategy.name,
        exchange=cfg.exchange.id,
        url=cfg.exchange.url,
        run_dir=runner.journal.dir,
        symbols=cfg.strategy.symbols,
    )


def attach(runner: Runner) -> None:
    identity = identity_of(runner)
    _attach_alerts(runner, identity)
    _attach_metrics(runner, identity)


def _attach_alerts(runner: Runner, identity: RunIdentity) -> None:
    from perpbot.alerts.subscriber import attach as attach_alerts

    sub = attach_alerts(runner.bus, runner.config.alerts, identity)
    if sub is None:
        return

    def after_tick(r: Runner, snap: dict[str, Any]) -> None:
        sub.on_tick(int(snap.get("fills") or 0), snap.get("net_pnl"), snap.get("positions") or {})

    async def before_stop(r: Runner) -> None:  # the bus and its journal are still open
        sub.run_ended(r.exit_code, r.end_reason, r.fatal.message if r.fatal else None)
        sub.drain()

    def after_stop(r: Runner) -> None:  # the signed log is closed: outcomes stay off the bus
        sub.close(timeout=3.0, publish=False)

    runner.after_tick.append(after_tick)
    runner.before_stop.append(before_stop)
    runner.after_stop.append(after_stop)


def _positions(runner: Runner) -> dict[str, dict[str, Any]]:
    return {
        s: {
            "amount": p.amount,
            "mark_price": p.mark_price,
            "liquidation_price": p.liquidation_price,
        }
        for s, p in runner.positions.items()
    }


def _attach_metrics(runner: Runner, identity: RunIdentity) -> None:
    from perpbot.metrics.subscriber import attach as attach_metrics

    export = attach_metrics(runner.bus, runner.config.metrics, identity)
    if export is None:
        return

    async def on_connected(r: Runner) -> None:
        export.announce()

    def after_tick(r: Runner, snap: dict[str, Any]) -> None:
        export.on_tick(snap, _positions(r))

    def after_stop(r: Runner) -> None:
        export.close()

    runner.on_connected.append(on_connected)
    runner.after_tick.append(after_tick)
    runner.after_stop.append(after_stop)
