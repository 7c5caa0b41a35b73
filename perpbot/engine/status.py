"""The status publisher: a small JSON file per running bot that `perpbot status` reads.

Written atomically every tick to ``<state>/bots/<run_id>.json``; marked ended (not deleted)
when the run stops, so status can say how a bot ended. Concerns add sections through the
runner's ``tick_providers`` (they appear under ``extras``).
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any, Protocol

from perpbot.client.setup import account_id
from perpbot.fsutil import atomic_write_json
from perpbot.paths import bots_dir

if TYPE_CHECKING:
    from perpbot.client.setup import Credentials
    from perpbot.config import LoadedStrategy, StrategyFile
    from perpbot.engine.hooks import AfterTick, BeforeStop, OnConnected
    from perpbot.engine.state import PositionSnapshot


class StatusRun(Protocol):
    """What the status file says of a run."""

    run_id: str
    config: StrategyFile
    loaded: LoadedStrategy  # the strategy file's path
    started: float
    on_connected: OnConnected
    before_stop: BeforeStop
    after_tick: AfterTick

    @property
    def credentials(self) -> Credentials: ...
    @property
    def positions(self) -> dict[str, PositionSnapshot]: ...
    def snapshot(self) -> dict[str, Any]: ...


class StatusPublisher:
    def __init__(self, runner: StatusRun) -> None:
        self.runner = runner
        self.path = bots_dir() / f"{runner.run_id}.json"
        self.last_write = 0.0
        self.account = ""

    def document(self, state: str, snap: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.runner
        snap = snap if snap is not None else r.snapshot()
        return {
            "run_id": r.run_id,
            "state": state,
            "pid": os.getpid(),
            "strategy": r.config.strategy.name,
            "strategy_file": str(r.loaded.path),
            "exchange": r.config.exchange.id,
            "profile": r.config.exchange.profile,
            "account": self.account,  # no secret: exchange, endpoint, a hash of the key
            "share_symbols": r.config.strategy.share_symbols,  # perpbot.kill.sweep
            "symbols": r.config.strategy.symbols,
            "tick_interval": r.config.strategy.tick_interval,  # `perpbot status`: staleness
            "started_at": r.started,
            "updated_at": time.time(),
            "positions": {
                s: {
                    "amount": p.amount,
                    "entry_price": p.entry_price,
                    "mark_price": p.mark_price,
                    "unrealized_pnl": p.unrealized_pnl,
                    "liquidation_price": p.liquidation_price,
                }
                for s, p in r.positions.items()
            },
            "open_orders": snap["orders"].get("open", 0),
            "snapshot": snap,
        }

    def write(self, state: str = "running", snap: dict[str, Any] | None = None) -> None:
        atomic_write_json(self.path, self.document(state, snap))
        self.last_write = time.monotonic()


def attach(runner: StatusRun) -> None:
    publisher = StatusPublisher(runner)

    async def on_connected(r: StatusRun) -> None:
        cfg = r.config.exchange
        publisher.account = account_id(cfg.id, cfg.url, r.credentials.key_id)
        publisher.write("starting")

    async def before_stop(r: StatusRun) -> None:
        publisher.write("stopping")

    def after_tick(r: StatusRun, snap: dict[str, Any]) -> None:
        publisher.write("running", snap)

    runner.on_connected.append(on_connected)
    runner.before_stop.append(before_stop)
    runner.after_tick.append(after_tick)
