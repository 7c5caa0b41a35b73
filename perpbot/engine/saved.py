"""What a strategy keeps across runs, per strategy name, in the state dir.

    <state>/strategies/<name>.json
        {"strategy": name, "run_id": the last run, "saved_at": epoch,
         "state": what on_save last returned (or null),
         "totals": the strategy's ledger over all its runs: runs, orders, fills, volume,
                   fees, realized_pnl, funding}

Written atomically (a crash leaves the previous file whole) every ``save_interval_s``, when
the strategy stops and once more after the final reconcile; read at the next start: the
state goes to ``on_load``, the totals carry on (the run's summary shows them as
``strategy_totals``). The engine reads and writes it: the strategy's process never needs
the state dir.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from perpbot.engine.ledger import Ledger
from perpbot.errors import RuntimeFailure
from perpbot.fsutil import atomic_write_json, read_json
from perpbot.paths import strategies_dir

TOTALS = ("runs", "orders", "fills", "volume", "fees", "realized_pnl", "funding")


@dataclass(slots=True)
class Saved:
    state: dict[str, Any] | None = None
    totals: dict[str, float] = field(default_factory=dict)  # before this run


def saved_path(strategy: str) -> Path:
    return strategies_dir() / f"{strategy}.json"


def load_saved(strategy: str) -> Saved:
    """The last saved state and totals; one line when the file is unreadable."""
    path = saved_path(strategy)
    if not path.exists():
        return Saved()
    try:
        doc = read_json(path)
    except (OSError, ValueError) as exc:
        raise RuntimeFailure(
            f"{path}: the saved state of strategy {strategy!r} is unreadable "
            f"({type(exc).__name__}); move it away to start without it"
        ) from None
    doc = doc if isinstance(doc, dict) else {}
    state = doc.get("state")
    totals = doc.get("totals") if isinstance(doc.get("totals"), dict) else {}
    return Saved(
        state=state if isinstance(state, dict) else None,
        totals={k: float(totals.get(k) or 0.0) for k in TOTALS},
    )


def totals_with(before: dict[str, float], ledger: Ledger) -> dict[str, float]:
    """The strategy's totals: the runs before this one, plus this run so far."""
    now = {
        "runs": 1,
        "orders": len(ledger.orders),
        "fills": len(ledger.fills),
        "volume": ledger.volume,
        "fees": ledger.fees,
        "realized_pnl": ledger.realized_pnl,
        "funding": ledger.funding,
    }
    return {k: round(float(before.get(k) or 0.0) + now[k], 10) for k in TOTALS}


def check_state(state: Any) -> str | None:
    """Why ``state`` (on_save's answer) cannot be kept, or None."""
    if not isinstance(state, dict):
        return f"on_save returned {type(state).__name__}, expected a dict (nothing saved)"
    try:
        json.dumps(state, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"on_save's state is not JSON data ({exc}); nothing saved"
    return None


def store_saved(
    strategy: str, run_id: str, state: dict[str, Any] | None, totals: dict[str, float]
) -> None:
    doc = {
        "strategy": strategy,
        "run_id": run_id,
        "saved_at": time.time(),
        "state": state,
        "totals": totals,
    }
    atomic_write_json(saved_path(strategy), doc)
