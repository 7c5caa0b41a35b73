"""Run reporting: the tick snapshot (status file, live panel, ticks.jsonl) and the summary.

Concerns add their sections through ``tick_providers`` (under ``extras``) and
``summary_extras``; the reporter knows none of them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
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
                for sym, p in s.positions.items()
                if p.amount
            },
            "warnings": warnings,
            "run_dir": str(self.journal.dir),
            **self.summary_extras,
        }
