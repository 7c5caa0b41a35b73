"""Attaching conditional-order care to a run: the at-trigger re-judgement of the run's
stops (perpbot.risk.stops) and, with ``[protect] enabled``, the keeper."""

from __future__ import annotations

import asyncio
import contextlib

from perpbot.engine.hooks import AttachableRun
from perpbot.protect.keeper import Keeper


def attach(runner: AttachableRun) -> None:
    runner.background.append(watch)


async def watch(runner: AttachableRun) -> None:
    """Until the run stops: re-judge standing stops, then keep every position protected."""
    cfg = runner.config.protect
    keeper: Keeper | None = None
    while not runner.stop_event.is_set():
        stops = runner.conditional
        if stops is not None:
            if keeper is None and cfg.enabled:
                keeper = Keeper(
                    cfg=cfg, stops=stops, bus=runner.bus,
                    symbols=list(runner.config.strategy.symbols),
                )  # fmt: skip
            try:
                await stops.rejudge(runner.positions, runner.marks)
                if keeper is not None:
                    await keeper.sync(runner.positions)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed round; the next one tries again
                runner.output.warn(f"protect: {type(exc).__name__}: {exc}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.stop_event.wait(), cfg.check_interval_s)
