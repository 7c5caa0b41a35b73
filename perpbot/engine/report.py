"""Run reporting: the tick snapshot (status file, live panel, ticks.jsonl) and the summary.

Concerns add their sections through ``tick_providers`` (under ``extras``) and
``summary_extras``; the reporter knows none of them.

ticks.jsonl (``tick_line``): every concern's section is a couple of KB per tick (the resting
orders, each stream's health, the rate buckets), hundreds of MB a day at 1 s ticks. So a
*full* line, with every section, is written at the first tick and then once every
``detail_every_s`` seconds; the ticks in between write a *core* line: marks, positions,
equity, order counts, the request-weight figures and the index prices (everything
`perpbot report` draws), and only when something in it changed since the line before.
``detail_every_s = 0`` writes a full line at every tick. The status file and the live panel
always get the full snapshot.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from perpbot.engine.journal import RunJournal
from perpbot.engine.ledger import Ledger
from perpbot.engine.state import RunState


@dataclass(slots=True, kw_only=True)
class RunReporter:
    state: RunState
    ledger: Ledger
    journal: RunJournal
    tick_providers: list[Callable[[], dict[str, Any]]]  # the concerns' status sections
    summary_extras: dict[str, Any]  # the concerns' summary sections
    detail_every_s: float = 0.0  # a full ticks.jsonl line this often (0: every tick)
    _last_full: float = field(default=-math.inf, init=False)
    _last_core: dict[str, Any] | None = field(default=None, init=False)

    def snapshot(self) -> dict[str, Any]:
        s, ledger = self.state, self.ledger
        unreal = s.unrealized_pnl()
        extras: dict[str, Any] = {}
        for provider in self.tick_providers:
            with contextlib.suppress(Exception):  # a broken section must not stop the tick
                extras.update(provider())
        return {
            "run_id": s.run_id,
            "strategy": s.strategy,
            "uptime_s": time.time() - s.started,
            "positions": {sym: p.amount for sym, p in s.positions.items()},
            "marks": dict(s.marks),
            "orders": ledger.counts(),
            "fills": len(ledger.fills),
            "fees": ledger.fees,
            "realized_pnl": ledger.realized_pnl,
            "unrealized_pnl": unreal,
            "net_pnl": ledger.realized_pnl - ledger.fees + unreal,
            "equity": s.equity,
            "peak_equity": s.peak_equity,
            "extras": extras,
        }

    def tick_record(self, snap: dict[str, Any]) -> dict[str, Any]:
        """The line of ticks.jsonl for this snapshot."""
        return {
            "ts": time.time(),
            "marks": snap["marks"],
            "positions": {
                sym: {
                    "amount": p.amount,
                    "entry": p.entry_price,
                    "upnl": p.unrealized_pnl,
                    "liquidation": p.liquidation_price,
                }
                for sym, p in self.state.positions.items()
            },
            "equity": self.state.equity,
            "orders": snap["orders"],
            **snap["extras"],
        }

    def tick_line(self, snap: dict[str, Any], now: float | None = None) -> dict[str, Any] | None:
        """The ticks.jsonl line for this snapshot: full, core, or None (nothing changed)."""
        now = time.monotonic() if now is None else now
        full = self.tick_record(snap)
        core = core_tick(full)
        if now - self._last_full >= self.detail_every_s:
            self._last_full = now
            self._last_core = core
            return full
        if _without_ts(core) == _without_ts(self._last_core):
            return None
        self._last_core = core
        return core

    def summary(
        self,
        *,
        exchange: str,
        end_reason: str,
        exit_code: int,
        error: str | None,
        funding: float,
        warnings: list[str],
    ) -> dict[str, Any]:
        s, ledger = self.state, self.ledger
        ended = time.time()
        unreal = s.unrealized_pnl()
        realized, fees = ledger.realized_pnl, ledger.fees
        return {
            "run_id": s.run_id,
            "strategy": s.strategy,
            "exchange": exchange,
            "symbols": s.symbols,
            "started_at": s.started,
            "ended_at": ended,
            "runtime_s": round(ended - s.started, 3),
            "end_reason": end_reason,
            "exit_code": exit_code,
            "error": error,
            "orders": ledger.counts(),
            "rejections": dict(ledger.rejected),
            "fills": len(ledger.fills),
            "maker_fills": sum(1 for f in ledger.fills if f.maker),
            "volume": round(ledger.volume, 8),
            "fees": round(fees, 8),
            "funding": round(funding, 8),
            "realized_pnl": round(realized, 8),
            "unrealized_pnl": round(unreal, 8),
            "net_pnl": round(realized - fees + funding + unreal, 8),
            "start_equity": s.start_equity,
            "end_equity": s.equity,
            "peak_equity": s.peak_equity,
            "final_positions": {
                sym: {
                    "amount": p.amount,
                    "entry_price": p.entry_price,
                    "mark_price": p.mark_price,
                    "unrealized_pnl": p.unrealized_pnl,
                }
                for sym, p in {**s.positions, **s.legs}.items()  # hedge mode: "SYMBOL|LONG"...
                if p.amount
            },
            "warnings": warnings,
            "run_dir": str(self.journal.dir),
            **self.summary_extras,
        }


RATE_CORE = ("weight_used", "weight_limit", "weight_nominal")


def core_tick(full: dict[str, Any]) -> dict[str, Any]:
    """The part of a full tick line that `perpbot report` draws: marks, positions, equity,
    order counts, request weight (used, limit, nominal) and the index section."""
    core = {k: full[k] for k in ("ts", "marks", "positions", "equity", "orders") if k in full}
    rate = full.get("rate")
    if isinstance(rate, dict):
        core["rate"] = {k: rate[k] for k in RATE_CORE if k in rate}
    risk = full.get("risk")
    index = risk.get("index") if isinstance(risk, dict) else None
    if index:
        core["index"] = index  # as the risk layer wrote it (perpbot.report.extras reads it)
    return core


def _without_ts(line: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if line is None else {k: v for k, v in line.items() if k != "ts"}
