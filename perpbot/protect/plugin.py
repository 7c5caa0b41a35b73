"""Attaching conditional-order care to a run: the at-trigger re-judgement of the run's
stops (perpbot.risk.stops) and, with ``[protect] enabled``, the keeper."""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Protocol

from perpbot.protect.keeper import Keeper

if TYPE_CHECKING:
    from perpbot.config import StrategyFile
    from perpbot.engine.conditional import ConditionalOrders
    from perpbot.engine.hooks import Background
    from perpbot.engine.output import RunOutput
    from perpbot.engine.state import PositionSnapshot
    from perpbot.events import EventBus


class ProtectRun(Protocol):
    """What the stops' re-judgement and the keeper use of a run."""

    config: StrategyFile
    bus: EventBus
    output: RunOutput
    stop_event: asyncio.Event
    conditional: ConditionalOrders | None
    background: Background

    @property
    def positions(self) -> dict[str, PositionSnapshot]: ...
    @property
    def legs(self) -> dict[str, PositionSnapshot]: ...
    @property
    def marks(self) -> dict[str, float]: ...


def attach(runner: ProtectRun) -> None:
    runner.background.append(watch)


async def watch(runner: ProtectRun) -> None:
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
                await stops.rejudge({**runner.positions, **runner.legs}, runner.marks)
                if keeper is not None:
                    await keeper.sync(runner.positions, runner.legs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed round; the next one tries again
                runner.output.warn(f"protect: {type(exc).__name__}: {exc}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runner.stop_event.wait(), cfg.check_interval_s)
