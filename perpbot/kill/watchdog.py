"""The watchdog in every `perpbot run`: it honours the kill switch whatever the strategy does.

A background task on the engine's event loop (the strategy runs in its own thread, so a
hung or looping ``on_tick`` cannot hold it up) polls the sentinel every ``[kill] poll_ms``
(25 ms by default: one ``stat``). When a matching entry appears it:

1. cuts short the pipeline's waits in progress (a request asleep in a backoff must not go
   out; the gate's last look refuses it anyway if it could add risk);
2. at ``cancel`` and ``flatten``: cancels the open orders (all of them on the run's symbols
   for a switch covering the account, only the run's own for one scoped to a run), then
   verifies against the exchange; at ``flatten``: closes the positions (flatten.py);
3. records an acknowledgement in ``<state>/kill/acks/<run_id>.json`` for `perpbot kill`;
4. at ``cancel`` and ``flatten`` stops the run with exit code 4 (the summary lists what was
   cancelled and closed), and from then on cuts every wait short, so that an engine
   reconcile asleep in a backoff does not hold the stop up. At ``halt`` the run stays up
   with the strategy paused (the engine skips ticks while the switch stands, open orders
   stay) and resumes when it is cleared.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from typing import TYPE_CHECKING, Any, Protocol

from perpbot.client.request import reducing_risk
from perpbot.errors import EXIT_KILL, describe_error
from perpbot.events import Decision
from perpbot.kill.acks import describe_actions, read_ack, write_ack
from perpbot.kill.cancel import (
    CANCEL_DEADLINE_S,
    cancel_open_orders,
    order_record,
)
from perpbot.kill.flatten import FlattenPolicy, flatten_positions
from perpbot.kill.gate import cut_waits
from perpbot.kill.ops import OrderingRun, runner_ops
from perpbot.kill.sentinel import LEVEL_MEANING, KillEntry, SentinelWatcher, shared_watcher
from perpbot.kill.waitcut import LongWaitCutter

if TYPE_CHECKING:
    from perpbot.client.waits import Interrupter
    from perpbot.config import KillSection, StrategyFile
    from perpbot.engine.ledger import Ledger
    from perpbot.events import EventBus


class WatchdogRun(OrderingRun, Protocol):
    """What the kill watchdog uses of a run: its orders (ledger, order calls), its stop."""

    run_id: str
    config: StrategyFile
    bus: EventBus
    ledger: Ledger
    summary_extras: dict[str, Any]

    @property
    def interrupter(self) -> Interrupter: ...
    def request_stop(self, reason: str, exit_code: int = 0) -> None: ...


def known_open_orders(runner: WatchdogRun, symbol: str) -> list[dict[str, Any]]:
    """The run's open orders on ``symbol`` as its ledger knows them (ccxt-shaped)."""
    out = []
    for cid in runner.ledger.open_client_ids(symbol):
        tracked = runner.ledger.orders[cid]
        out.append(
            {
                "clientOrderId": cid,
                "id": tracked.order_id,
                "symbol": symbol,
                "side": tracked.spec.side,
                "price": tracked.spec.price,
                "amount": tracked.spec.amount,
            }
        )
    return out


def covers_account(entry: KillEntry) -> bool:
    """A switch for all bots or a whole profile empties the book; a run's only its orders."""
    return entry.scope == "all" or entry.scope.startswith("profile:")


class KillWatchdog:
    def __init__(
        self, runner: WatchdogRun, cfg: KillSection, watcher: SentinelWatcher | None = None
    ) -> None:
        self.runner = runner
        self.cfg = cfg
        self.watcher = watcher or shared_watcher()
        self.acted: KillEntry | None = None
        self.acted_at = 0.0  # wall time of the last act (the dead-man stopped refreshing)
        self.report: dict[str, Any] | None = None

    # -- state ------------------------------------------------------------------------------
    def kill_state(self) -> KillEntry | None:
        """The entry this run obeys now (None when the switch is clear for it)."""
        r = self.runner
        return self.watcher.match(
            profile=r.config.exchange.profile, run_id=r.run_id, strategy=r.config.strategy.name
        )

    @property
    def stopping(self) -> bool:
        """True once the switch has made this run cancel (the dead-man stops refreshing)."""
        return self.acted is not None and self.acted.level != "halt"

    def status(self) -> dict[str, Any]:
        entry = self.kill_state()
        if entry is None:
            return {}
        return {"kill": {"level": entry.level, "reason": entry.reason, "since": entry.time}}

    # -- loop -------------------------------------------------------------------------------
    async def run(self, runner: WatchdogRun) -> None:
        poll = self.cfg.poll_ms / 1000.0
        while True:
            try:
                await self.step()
            except Exception as exc:  # nothing may end the watchdog: report and poll on
                self.runner.bus.publish(
                    Decision(
                        "kill",
                        "alert",
                        "KILL_WATCHDOG_ERROR",
                        f"the kill watchdog hit an error and keeps watching: {describe_error(exc)}",
                        {},
                    )
                )
            await asyncio.sleep(poll)

    async def step(self) -> None:
        entry = self.kill_state()
        if entry is not None:
            if self.acted is None or entry.rank > self.acted.rank:
                await self.act(entry)
        elif self.acted is not None and self.acted.level == "halt":
            self.resume()

    def _base_ack(self, entry: KillEntry) -> dict[str, Any]:
        r = self.runner
        return {
            "run_id": r.run_id,
            "strategy": r.config.strategy.name,
            "profile": r.config.exchange.profile,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "entry_id": entry.id,
            "level": entry.level,
            "reason": entry.reason,
            "code": entry.code,
            "entry_time": entry.time,
            "seen_at": time.time(),
            "seen_ms": round(max(0.0, time.time() - entry.time) * 1000.0, 1),
            "state": "acting",
        }

    async def act(self, entry: KillEntry) -> None:
        r = self.runner
        cut_waits(r.interrupter, entry)
        self.acted = entry
        self.acted_at = time.time()
        ack = self._base_ack(entry)
        announced = asyncio.ensure_future(self._announce(entry, dict(ack)))
        outcome: dict[str, Any] = {"cancelled": [], "closed": [], "errors": []}
        try:
            outcome = await self._do(entry)
        except Exception as exc:  # acting must never kill the watchdog: report and stop
            outcome["errors"].append(f"kill switch action failed: {describe_error(exc)}")
            outcome["left_open"] = [
                order_record(o, s)
                for s in r.config.strategy.symbols
                for o in known_open_orders(r, s)
            ]
            outcome["unconfirmed"] = list(r.config.strategy.symbols)  # nothing was checked
        finally:
            with contextlib.suppress(Exception):
                await announced
            ack.update(
                state="halted" if entry.level == "halt" else "done",
                done_at=time.time(),
                acted_ms=round(max(0.0, time.time() - entry.time) * 1000.0, 1),
                **outcome,
                open_orders=sum(
                    len(r.ledger.open_client_ids(s)) for s in r.config.strategy.symbols
                ),
            )
            if ack.get("left_open") or ack.get("positions_left") or ack.get("unconfirmed"):
                ack["countdown"] = self.countdown_cover(ack)
            await self._finish(entry, ack)

    async def _announce(self, entry: KillEntry, ack: dict[str, Any]) -> None:
        """KILL_SEEN, and the acknowledgement `perpbot kill` waits for ("acting").

        It runs as a task beside the cancels and lets them take their first steps first (to
        the budget store or the wire): the decision's signed audit record is fsynced and the
        acknowledgement is written on a thread, and either could hold the loop, and so the
        cancels, for milliseconds on a busy machine. The decision still comes before the
        cancels' own records, which are made once the exchange has answered them.
        """
        await asyncio.sleep(0)  # the cancels' tasks, just created, run before this
        self.runner.bus.publish(
            Decision(
                "kill",
                "act",
                "KILL_SEEN",
                f"kill switch seen ({entry.describe()}): {LEVEL_MEANING[entry.level]}",
                {"entry_id": entry.id, "level": entry.level, "seen_ms": ack["seen_ms"]},
            )
        )
        await asyncio.to_thread(write_ack, self.runner.run_id, ack)

    def countdown_cover(self, ack: dict[str, Any]) -> dict[str, Any]:
        """What the exchange's dead-man countdown will do about what is left open.

        The dead-man stops refreshing the moment the switch makes the run cancel (it reads
        ``stopping``), so its last refresh happened before ``acted_at``: the exchange
        cancels the orders left on an armed symbol by ``acted_at + countdown`` at the latest.
        """
        info = self.runner.summary_extras.get("deadman") or {}
        armed = list(info.get("armed") or [])
        countdown_s = info.get("countdown_s")
        symbols = {str(o.get("symbol")) for o in ack.get("left_open") or []}
        symbols |= set(ack.get("unconfirmed") or [])
        covered = sorted(s for s in symbols if s in armed)
        out: dict[str, Any] = {"armed": covered, "uncovered": sorted(symbols - set(armed))}
        if covered and countdown_s is not None:
            out["countdown_s"] = countdown_s
            out["fires_by"] = self.acted_at + float(countdown_s)
        return out

    async def _do(self, entry: KillEntry) -> dict[str, Any]:
        r = self.runner
        if entry.level == "halt":  # (the watchdog runs only once the run is connected)
            return {"cancelled": [], "closed": [], "errors": []}
        flatten_s = self.cfg.flatten_timeout_s if entry.level == "flatten" else 0.0
        cutter = LongWaitCutter(r.bus, r.interrupter, deadline_s=CANCEL_DEADLINE_S + flatten_s)
        with cutter, reducing_risk():  # its lookups too draw on the budget's reserve
            out = await self._cancel_and_flatten(entry)
        out.update(cutter.report())
        return out

    async def _cancel_and_flatten(self, entry: KillEntry) -> dict[str, Any]:
        r = self.runner
        symbols = list(r.config.strategy.symbols)
        ops = runner_ops(r)
        known = {s: known_open_orders(r, s) for s in symbols}
        only = (
            None if covers_account(entry) else (lambda o: o.get("clientOrderId") in r.ledger.orders)
        )
        cancel = await cancel_open_orders(ops, symbols, known, only=only)
        out: dict[str, Any] = {
            "cancelled": cancel.cancelled,
            "closed": [],
            "errors": list(cancel.errors),
            "left_open": cancel.left_records(),
            "unconfirmed": cancel.unconfirmed,
        }
        if entry.level == "flatten":
            policy = FlattenPolicy(
                slippage_pct=self.cfg.flatten_slippage_pct,
                limit_attempts=self.cfg.flatten_limit_attempts,
                timeout_s=self.cfg.flatten_timeout_s,
                exit_policy=self.cfg.flatten_policy,
            )
            flat = await flatten_positions(ops, symbols, policy)
            out["closed"], out["errors"] = flat.closed, out["errors"] + flat.errors
            out["positions_left"] = flat.left
            out["stops_cancelled"] = flat.stops_cancelled
        return out

    async def _finish(self, entry: KillEntry, ack: dict[str, Any]) -> None:
        r = self.runner
        with contextlib.suppress(OSError):
            await asyncio.to_thread(write_ack, r.run_id, ack)
        line = f"kill switch (level {entry.level}, {ack['acted_ms']:.0f} ms after it was set): " + (
            "; ".join(describe_actions(ack)) or "nothing to do"
        )
        self.report = {
            "entry_id": entry.id,
            "level": entry.level,
            "reason": entry.reason,
            "who": entry.who,
            "code": entry.code,
            "seen_ms": ack["seen_ms"],
            "acted_ms": ack["acted_ms"],
            "cancelled": ack["cancelled"],
            "closed": ack["closed"],
            "errors": ack["errors"],
            "left_open": ack.get("left_open") or [],
            "unconfirmed": ack.get("unconfirmed") or [],
            "positions_left": ack.get("positions_left") or {},
            "countdown": ack.get("countdown"),
            "waits_cut": ack.get("waits_cut") or [],
            "summary": line,
        }
        r.summary_extras["kill"] = self.report
        r.bus.publish(
            Decision(
                "kill",
                "act",
                "KILL_DONE",
                line,
                {
                    "entry_id": entry.id,
                    "level": entry.level,
                    "cancelled": len(ack["cancelled"]),
                    "closed": len(ack["closed"]),
                    "errors": len(ack["errors"]),
                    "acted_ms": ack["acted_ms"],
                },
            )
        )
        if entry.level != "halt":
            r.request_stop(f"kill switch: {entry.reason}", EXIT_KILL)
            # done acting: from now on every wait ends at once
            r.interrupter.interrupt(f"kill switch: {entry.reason}")

    def resume(self) -> None:
        """The switch was cleared while this run was halted: let it trade again."""
        r = self.runner
        was, self.acted = self.acted, None
        r.summary_extras.pop("kill", None)
        r.bus.publish(
            Decision(
                "kill",
                "info",
                "KILL_CLEARED",
                "the kill switch was cleared; the strategy resumes at the next tick",
                {"entry_id": was.id if was else None},
            )
        )
        with contextlib.suppress(OSError):
            ack = read_ack(r.run_id) or {"run_id": r.run_id}
            write_ack(r.run_id, {**ack, "state": "resumed", "resumed_at": time.time()})
