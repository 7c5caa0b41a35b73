"""What filled while no run of this strategy watched (issue: orders lost between sessions).

A run SIGKILLed (or stopped, with a stop of its left standing) leaves orders that can fill
before the next run starts. That next run reads its position from the exchange, so the
fill is in it; but a run reads fills from its own start, so the fill itself would never be
said. At the start the sweep (perpbot.kill.sweep) finds when the latest earlier run of this
strategy on this account last looked (its status file's last write, ``updated_at``) and
the first reconcile reads fills from there (perpbot.engine.reconcile ``lookback_ms``): each
fill of an order this run did not place is said once, ``FILL_FOREIGN`` "an order of an
earlier run of this strategy ... before this run started" (perpbot.engine.unplaced). It is
not booked as this run's (its ledger, PnL and fees start at its start).

The read starts ``MARGIN_MS`` before that last look (the earlier run's last reconcile came
before its last status write); the fills the earlier run recorded as its own (its
``fills.jsonl``) are not said again. At most 7 days back (Binance keeps userTrades
queries to 7 days).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from perpbot.kill.acks import bot_documents
from perpbot.paths import runs_dir

if TYPE_CHECKING:
    from perpbot.engine.state import RunState
    from perpbot.engine.unplaced import UnplacedFills

AT_MOST_S = 7 * 24 * 3600.0
MARGIN_MS = 2000.0


def recorded_trades(run_id: str) -> set[str]:
    """The trade ids a run recorded as its own fills (its run folder's fills.jsonl)."""
    path = runs_dir() / run_id / "fills.jsonl"
    out: set[str] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:  # a torn last line of a SIGKILLed run
            continue
        if isinstance(record, dict) and record.get("trade_id") is not None:
            out.add(str(record["trade_id"]))
    return out


def look_back(
    state: RunState, unplaced: UnplacedFills | None, account: str, run_id: str
) -> int | None:
    """When (the exchange's epoch ms) the first reads of fills start: the latest earlier
    run of this strategy (``state.strategy``) on ``account`` last looked, less the margin;
    None when there is no earlier run (or it looked after this run started, which cannot
    be). The fills that run recorded go into ``unplaced.said``: not said again."""
    earlier = [
        d
        for d in bot_documents()
        if d.get("strategy") == state.strategy
        and d.get("account") == account
        and d.get("run_id") != run_id
        and isinstance(d.get("updated_at"), int | float)
    ]
    if not earlier:
        return None
    latest = max(earlier, key=lambda d: float(d["updated_at"]))
    earliest = state.start_ms - AT_MOST_S * 1000.0
    since = int(max(float(latest["updated_at"]) * 1000.0 - MARGIN_MS, earliest))
    since += state.clock_skew_ms
    if since >= state.since_ms:
        return None
    if unplaced is not None:
        unplaced.started_ms = state.since_ms
        unplaced.said.update(recorded_trades(str(latest.get("run_id"))))
    return since
