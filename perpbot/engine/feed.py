"""The strategy's events, derived from the engine's bookkeeping (not from how it is fed).

The ledger tells every order state change and every new fill (``Ledger.listeners``); the
run state holds positions; the kill watchdog says whether the switch stands. Whatever feeds
those (the REST reconcile every tick today, a stream later), ``EventFeed.drain`` turns what
changed since the last drain into one batch of plain dicts, in THE delivery order:

    1. kill       the switch now stands / was cleared          -> on_kill
    2. fill       each new fill, in the order the ledger saw it -> on_fill
    3. order      each order state change, in order             -> on_order_update
    4. position   each symbol whose signed amount changed       -> on_position_change

then the strategy's due timers, then ``on_tick`` (perpbot.engine.runtime). The batch is
plain data (JSON-safe) so it crosses the process boundary unchanged.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from perpbot.engine.ledger import Ledger
from perpbot.engine.state import PositionSnapshot

ORDER = {"kill": 0, "fill": 1, "order": 2, "position": 3}


def kill_dict(entry: Any) -> dict[str, Any] | None:
    """A kill entry as plain data (None when the switch is clear)."""
    if entry is None:
        return None
    if dataclasses.is_dataclass(entry) and not isinstance(entry, type):
        d = dataclasses.asdict(entry)
    else:
        d = {"level": getattr(entry, "level", None), "reason": getattr(entry, "reason", None)}
    return {k: d.get(k) for k in ("level", "reason", "code", "source", "scope")}


class EventFeed:
    def __init__(
        self,
        ledger: Ledger,
        positions: Callable[[], dict[str, PositionSnapshot]],
        kill_state: Callable[[], Any],
    ) -> None:
        self._pending: list[dict[str, Any]] = []
        self._positions = positions
        self._kill_state = kill_state
        self._told_amounts: dict[str, float] = {}
        self._told_kill: dict[str, Any] | None = None
        ledger.listeners.append(self._on_ledger)

    def _on_ledger(self, event: dict[str, Any]) -> None:
        self._pending.append(event)

    def prime(self) -> None:
        """What stands at start is the baseline: no event for a position the strategy
        finds at ``on_start`` (it reads it with ``ctx.position``). The ledger's events so
        far stay (orders adopted from an earlier run: ``ORDER_ADOPTED``, and what became of
        them), delivered with the first cycle."""
        self._told_amounts = {s: p.amount for s, p in self._positions().items()}
        self._told_kill = kill_dict(self._kill_state())

    @property
    def kill_standing(self) -> bool:
        """Whether the kill switch stood at the last drain (what the strategy was told)."""
        return self._told_kill is not None

    def drain(self) -> list[dict[str, Any]]:
        events, self._pending = self._pending, []
        kill = kill_dict(self._kill_state())
        if kill != self._told_kill:
            events.append({"type": "kill", "state": kill})
            self._told_kill = kill
        positions = self._positions()  # by symbol, and by "SYMBOL|LONG" for a hedge side
        for key, p in positions.items():
            before = self._told_amounts.get(key, 0.0)
            if p.amount != before:
                events.append(
                    {
                        "type": "position",
                        "symbol": p.symbol,
                        "before": before,
                        "after": p.amount,
                        "entry_price": p.entry_price,
                        "liquidation_price": p.liquidation_price,
                        "position_side": p.position_side,
                    }
                )
                self._told_amounts[key] = p.amount
        for key in [k for k in self._told_amounts if k not in positions]:
            before = self._told_amounts.pop(key)
            symbol, _, side = key.partition("|")
            if before:
                events.append({"type": "position", "symbol": symbol, "before": before,
                               "after": 0.0, "position_side": side or None})  # fmt: skip
        return sorted(events, key=lambda e: ORDER[e["type"]])  # stable: keeps their order
