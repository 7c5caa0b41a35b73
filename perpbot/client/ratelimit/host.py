"""This process's handle on one host's shared budget: transactions, a mirror, events.

The mirror is the state as of this process's last transaction; it answers cheap questions
(is the host blocked? are the rules due?) without a round trip, and the authoritative
answer always comes from a transaction on the store.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from perpbot.client.ratelimit.state import Change, HostState, Policy
from perpbot.client.ratelimit.store import Store
from perpbot.events import Decision, EventBus

T = TypeVar("T")
LAYER = "ratelimit"


class HostBudget:
    def __init__(
        self, *, store: Store, policy: Policy, bus: EventBus, exchange: Any, key_id: str
    ) -> None:
        self.store = store
        self.policy = policy
        self.bus = bus
        self.exchange = exchange
        self.key_id = key_id
        self.mirror = HostState()
        self._listeners: list[Callable[[], None]] = []
        self._offset_raw: Any = None
        self._offset_s = 0.0

    def now(self) -> float:
        """The exchange's clock (windows are aligned to it), from ccxt's time offset."""
        raw = self.exchange.options.get("timeDifference")
        if raw is not self._offset_raw:  # resynced since: convert the new offset once
            self._offset_raw, self._offset_s = raw, float(raw or 0) / 1000.0
        return time.time() - self._offset_s

    def txn(self, fn: Callable[[HostState], T]) -> T:
        """Run ``fn`` atomically on the shared state (it may run more than once: keep it pure)."""

        def run(st: HostState) -> T:
            result = fn(st)
            self.mirror = st
            return result

        try:
            return self.store.transact(run)
        finally:
            for listener in self._listeners:
                listener()

    def on_txn(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every transaction (what it knew of the mirror is stale)."""
        self._listeners.append(listener)

    def publish(self, changes: list[Change]) -> None:
        for c in changes:
            self.bus.publish(Decision(LAYER, c.action, c.code, c.sentence, dict(c.data)))
