"""KillGate: the outermost pipeline layer. While a matching sentinel stands, nothing that could
add risk reaches the exchange, whoever asks (a strategy, the engine, another command).

    halt     reads and cancels pass; every new order and account change is refused
    cancel   the same (the watchdog is cancelling the open orders)
    flatten  reads, cancels and reduce-only orders pass (closing positions)

It also interrupts the Setup's waits as soon as it sees the sentinel: a request that is
sleeping in a backoff or a rate-limit pause below this layer must not go out afterwards
(retries below the gate do not pass it again), so the wait is cut short and fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perpbot.client.request import Request
from perpbot.errors import KillSwitchActive
from perpbot.events import Decision, EventBus
from perpbot.kill.sentinel import (
    CLEAR_HINT,
    LEVEL_RANK,
    KillEntry,
    SentinelWatcher,
    shared_watcher,
)

if TYPE_CHECKING:
    from perpbot.client.assemble import Setup
    from perpbot.client.pipeline import CallNext
    from perpbot.client.waits import Interrupter

INTERRUPT_PREFIX = "kill switch"


def is_reduce_only(request: Request) -> bool:
    if request.order is not None:
        return bool(request.order.reduce_only)
    flag = request.params.get("reduceOnly")
    return flag is True or str(flag).lower() == "true"


def allowed(level: str, request: Request) -> bool:
    """May ``request`` pass while a sentinel of ``level`` stands?"""
    kind = request.method_class
    if kind in ("read", "cancel"):
        return True
    return (
        kind == "order" and LEVEL_RANK[level] >= LEVEL_RANK["flatten"] and is_reduce_only(request)
    )


def what_passes(level: str) -> str:
    if level == "flatten":
        return "only reads, cancels and reduce-only orders pass"
    return "only reads and cancels pass"


def interrupt_for(interrupter: Interrupter, entry: KillEntry) -> None:
    """Cut every current and future wait short (idempotent)."""
    if not interrupter.interrupted:
        interrupter.interrupt(f"{INTERRUPT_PREFIX}: {entry.reason}")


def release(interrupter: Interrupter) -> None:
    """After the switch was cleared (a halt resumed): let waits wait again."""
    if (interrupter.reason or "").startswith(INTERRUPT_PREFIX):
        interrupter.reset()


class KillGate:
    name = "kill"

    def __init__(
        self,
        bus: EventBus,
        interrupter: Interrupter,
        *,
        profile: str | None,
        run_id: str | None,
        strategy: str | None,
        watcher: SentinelWatcher | None = None,
    ) -> None:
        self.bus = bus
        self.interrupter = interrupter
        self.profile = profile
        self.run_id = run_id
        self.strategy = strategy
        self.watcher = watcher or shared_watcher()

    def current(self) -> KillEntry | None:
        return self.watcher.match(profile=self.profile, run_id=self.run_id, strategy=self.strategy)

    async def __call__(self, request: Request, call_next: CallNext) -> Any:
        entry = self.current()
        if entry is None:
            return await call_next(request)
        interrupt_for(self.interrupter, entry)
        if allowed(entry.level, request):
            return await call_next(request)
        sentence = (
            f"the kill switch refuses {request.describe()}: {entry.describe()}; "
            f"{what_passes(entry.level)}; {CLEAR_HINT}"
        )
        self.bus.publish(
            Decision(
                "kill",
                "deny",
                "KILL_ACTIVE",
                sentence,
                {
                    "level": entry.level,
                    "entry_id": entry.id,
                    "method": request.method,
                    "symbol": request.symbol,
                    "request_id": request.id,
                },
            )
        )
        raise KillSwitchActive(sentence, code="KILL_ACTIVE")


def kill_gate(setup: Setup) -> KillGate:
    """The layer for ``build_layers``: always on (the switch cannot be configured away)."""
    return KillGate(
        setup.bus,
        setup.interrupter,
        profile=setup.profile,
        run_id=setup.run_id,
        strategy=setup.strategy,
    )
