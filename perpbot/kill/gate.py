"""KillGate: the outermost pipeline layer. While a matching sentinel stands, nothing that could
add risk reaches the exchange, whoever asks (a strategy, the engine, another command).

    halt     reads and cancels pass; every new order and account change is refused
    cancel   the same (the watchdog is cancelling the open orders)
    flatten  reads, cancels and reduce-only orders pass (closing positions)

Two looks, because retries and waits happen *below* this layer:

- at the door (the layer itself), every request is judged when it enters the pipeline;
- at the wire (a transport ``before`` hook), every HTTP request is judged again just before
  it leaves, so an order that passed the door before the switch tripped and then slept in
  a rate-limit wait or a retry backoff, or is being resent after an unknown outcome, is
  refused at the last moment.

When it first sees an entry it also cuts short every wait in progress (a backoff should not
keep a bot asleep while a trader needs it to act). Later waits are left alone: the
watchdog's own cancels may need to wait for rate budget.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, NoReturn

from perpbot.client.position_side import closes
from perpbot.client.request import HttpRecord, Request
from perpbot.errors import KillSwitchActive, PermissionDenied
from perpbot.events import Decision, EventBus
from perpbot.kill.sentinel import (
    CLEAR_HINT,
    LEVEL_RANK,
    KillEntry,
    SentinelWatcher,
    shared_watcher,
)

if TYPE_CHECKING:
    from perpbot.client.pipeline import CallNext
    from perpbot.client.setup import Setup
    from perpbot.client.waits import Interrupter
    from perpbot.client.wire import HttpObservers

INTERRUPT_PREFIX = "kill switch"


def is_reduce_only(request: Request) -> bool:
    """Reduce-only, or a hedge-mode close (a SELL of the LONG side, a BUY of the SHORT one:
    Binance takes no reduceOnly in hedge mode, and such an order cannot open anything)."""
    if request.order is not None:
        return request.order.closes
    flag = request.params.get("reduceOnly")
    side = request.args[2] if len(request.args) > 2 else request.kwargs.get("side")
    hedge_close = closes(str(side).lower(), request.params.get("positionSide"))
    return flag is True or str(flag).lower() == "true" or hedge_close


# Reads and cancels pass at every level, so for them the gate only peeks (to notice a new
# switch and cut waits short) at most every PEEK_EVERY_S instead of a stat per request; the
# watchdog of a run polls on its own anyway. Risky requests are judged on every look.
ALWAYS_PASS = ("read", "cancel")
PEEK_EVERY_S = 0.02


def allowed(level: str, request: Request) -> bool:
    """May ``request`` pass while a sentinel of ``level`` stands?"""
    kind = request.method_class
    if kind in ALWAYS_PASS:
        return True
    return (
        kind == "order" and LEVEL_RANK[level] >= LEVEL_RANK["flatten"] and is_reduce_only(request)
    )


def what_passes(level: str) -> str:
    if level == "flatten":
        return "only reads, cancels and reduce-only orders pass"
    return "only reads and cancels pass"


def cut_waits(interrupter: Interrupter, entry: KillEntry) -> int:
    """Cut the waits in progress short (their requests fail with WaitInterrupted)."""
    return interrupter.interrupt_current(f"{INTERRUPT_PREFIX}: {entry.reason}")


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
        self._seen: set[str] = set()
        self._peeked = -PEEK_EVERY_S

    def watch_wire(self, observers: HttpObservers) -> None:
        """Take the last look at every HTTP request of ``observers`` (a transport's hooks),
        after every other hook (the limiter's waits)."""
        observers.add_before(self.last_look, last=True)

    def current(self) -> KillEntry | None:
        entry = self.watcher.match(profile=self.profile, run_id=self.run_id, strategy=self.strategy)
        if entry is not None and entry.id not in self._seen:
            self._seen.add(entry.id)
            cut_waits(self.interrupter, entry)
        return entry

    def passes(self, request: Request) -> bool:
        """Reads and cancels pass the door at every level (the pipeline routes them past
        it); the wire hook still peeks for a new switch on their behalf."""
        return request.method_class in ALWAYS_PASS

    async def __call__(self, request: Request, call_next: CallNext) -> Any:
        if request.method_class in ALWAYS_PASS:  # no level refuses them
            self._peek()
            return await call_next(request)
        entry = self.current()
        if entry is None or allowed(entry.level, request):
            return await call_next(request)
        self._refuse(request, entry, "")

    def last_look(self, record: HttpRecord, request: Request | None) -> None:
        """Transport hook: judge the request again as its HTTP request is about to leave.
        HTTP that did not come through the pipeline (code that reached the ccxt object
        itself) was judged by no guard: it never leaves, whatever the switch says."""
        if request is None:
            self._refuse_unguarded(record)
        if request.method_class in ALWAYS_PASS:
            self._peek()
            return
        entry = self.current()
        if entry is not None and not allowed(entry.level, request):
            self._refuse(request, entry, " as it was about to leave")

    def _peek(self) -> None:
        """Look for a new switch (to cut waits short) at most every PEEK_EVERY_S: a stat per
        read request would be most of this gate's cost."""
        now = time.monotonic()
        if now - self._peeked >= PEEK_EVERY_S:
            self._peeked = now
            self.current()

    def _refuse_unguarded(self, record: HttpRecord) -> NoReturn:
        sentence = (
            f"refused {record.http_method} {record.path}: it did not come through perpbot's "
            "guarded pipeline (kill switch, scope, risk, rate limit), so nothing judged it; "
            "call the exchange through ctx or the guarded client"
        )
        self.bus.publish(
            Decision(
                "kill",
                "deny",
                "UNGUARDED_HTTP",
                sentence,
                {"method": record.http_method, "path": record.path},
            )
        )
        raise PermissionDenied(sentence, code="UNGUARDED_HTTP")

    def _refuse(self, request: Request, entry: KillEntry, when: str) -> NoReturn:
        sentence = (
            f"the kill switch refuses {request.describe()}{when}: {entry.describe()}; "
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
    """The layer for ``build_layers``: always on (the switch cannot be configured away).

    It also registers its last look on the transport's ``before`` hooks (``setup.observers``).
    """
    gate = KillGate(
        setup.bus,
        setup.interrupter,
        profile=setup.profile,
        run_id=setup.run_id,
        strategy=setup.strategy,
    )
    gate.watch_wire(setup.observers)
    return gate
