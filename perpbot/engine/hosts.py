"""Where the strategy runs: a thread of the engine, or its own process.

Both hosts take the runtime's three messages (perpbot.engine.runtime) and answer each with
a future of its plain ``Outcome``; the run cycle (perpbot.app.cycle) does not know which
one it drives.

- ``ThreadHost`` (``[strategy] isolation = "thread"``): the runtime runs in the engine's
  strategy worker thread and calls the engine's Context in-process. A hung strategy is left
  behind (a thread cannot be killed) but never blocks the stop.
- ``ProcessHost`` (``isolation = "process"``, perpbot.engine.isolation): the runtime runs
  in a child process without credentials; ``close`` terminates it.
"""

from __future__ import annotations

from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from perpbot.engine.api import LocalPort, StrategyContext
from perpbot.engine.context import Context
from perpbot.engine.runtime import StrategyRuntime
from perpbot.engine.strategy import Strategy
from perpbot.engine.worker import StrategyWorker

Outcome = dict[str, Any]


class StrategyHost(Protocol):
    @property
    def busy(self) -> bool: ...
    def start(self, saved: dict[str, Any] | None) -> Future[Outcome]: ...
    def cycle(self, events: list[dict[str, Any]], tick: bool) -> Future[Outcome]: ...
    def stop(self) -> Future[Outcome]: ...
    def save(self) -> Future[Outcome]: ...
    def close(self) -> None: ...


class ThreadHost:
    def __init__(self, strategy: Strategy, context: Context, strategy_file: Path) -> None:
        self.worker = StrategyWorker()
        ctx = StrategyContext(
            LocalPort(context),
            symbols=context.symbols,
            params=strategy.params,
            run_id=context.run_id,
        )
        self.runtime = StrategyRuntime(strategy, ctx, strategy_file)

    @property
    def busy(self) -> bool:
        return self.worker.busy

    def start(self, saved: dict[str, Any] | None) -> Future[Outcome]:
        return self.worker.submit(lambda: self.runtime.start(saved))

    def cycle(self, events: list[dict[str, Any]], tick: bool) -> Future[Outcome]:
        return self.worker.submit(lambda: self.runtime.cycle(events, tick))

    def stop(self) -> Future[Outcome]:
        return self.worker.submit(self.runtime.stop)

    def save(self) -> Future[Outcome]:
        return self.worker.submit(self.runtime.save)

    def close(self) -> None:
        """Nothing to end: the daemon thread dies with the process."""
