"""Synthetic run folders for the report unit tests (the acceptance tests use real runs).

``write_run`` lays out a run folder exactly as perpbot.engine.journal writes one, from a
seeded random walk, so unit tests can pin down the maths and the tolerance rules.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perpbot.engine.journal import RunJournal

SYMBOL = "BTC/USDT:USDT"
T0 = 1_750_000_000.0


# Above the kernel's largest possible pid_max (2**22): no process can have it.
DEAD_PID = 2**22 + 1


def make_fill(i: int, ts: float, side: str, price: float, decided: float | None) -> dict[str, Any]:
    amount = 0.002
    slip = None
    if decided:
        slip = (1 if side == "buy" else -1) * (price - decided) / decided * 1e4
    return {
        "ts": ts,
        "symbol": SYMBOL,
        "side": side,
        "price": price,
        "amount": amount,
        "cost": price * amount,
        "fee": price * amount * (0.0002 if i % 3 else 0.0005),
        "fee_currency": "USDT",
        "maker": bool(i % 3),
        "order_id": str(1000 + i),
        "client_order_id": f"pb-x-{i}",
        "trade_id": str(5000 + i),
        "realized_pnl": 0.0 if side == "buy" else 0.01 * (i % 4 - 1),
        "intent": "grid",
        "decided_price": decided,
        "slippage_bps": slip,
    }


def build_run(
    run_id: str = "20250615-120000-grid-abc123",
    *,
    seed: int = 7,
    ticks: int = 40,
    n_fills: int = 10,
    summary: bool = True,
    end_reason: str = "duration",
    error: str | None = None,
    pid: int | None = None,
    events: list[dict[str, Any]] | None = None,
    tick_extra: Callable[[int], dict[str, Any]] | None = None,
    rejections: dict[str, int] | None = None,
    symbols: tuple[str, ...] = (SYMBOL,),
    started_at: float = T0,
    net_pnl: float | None = None,
) -> Path:
    """Write a run folder under the current $PERPBOT_HOME; returns its path."""
    rng = random.Random(seed)
    journal = RunJournal(run_id)
    journal.meta(
        {
            "run_id": run_id,
            "strategy": "grid",
            "strategy_file": "strategies/grid.toml",
            "symbols": list(symbols),
            "exchange": "sim",
            "profile": None,
            "started_at": started_at,
            "pid": pid if pid is not None else DEAD_PID,
            "host": __import__("socket").gethostname(),
            "duration": 60.0,
        }
    )
    price, equity = 60_000.0, 10_000.0
    fills: list[dict[str, Any]] = []
    for i in range(ticks):
        ts = started_at + 1 + i
        price *= 1 + rng.gauss(0, 0.0005)
        equity += rng.gauss(0, 2.0)
        pos = 0.002 * ((i // 5) % 3 - 1)
        record: dict[str, Any] = {
            "ts": ts,
            "marks": {s: price for s in symbols},
            "positions": {
                s: {"amount": pos, "entry": price, "upnl": 0.5, "liquidation": None}
                for s in symbols
            },
            "equity": equity,
            "orders": {"placed": i, "filled": i // 4, "open": 2, "rejected": 0},
        }
        if tick_extra is not None:
            record.update(tick_extra(i))
        journal.tick(record)
        if len(fills) < n_fills and i % 3 == 1:
            side = "buy" if len(fills) % 2 == 0 else "sell"
            decided = None if len(fills) == 0 else price * (1 + rng.gauss(0, 0.0002))
            fill = make_fill(len(fills), ts + 0.2, side, price, decided)
            fills.append(fill)
            journal.fill(fill)
    for ev in events or []:
        journal.event(ev)
    if summary:
        journal.summary(
            {
                "run_id": run_id,
                "strategy": "grid",
                "exchange": "sim",
                "symbols": list(symbols),
                "started_at": started_at,
                "ended_at": started_at + ticks + 2,
                "runtime_s": float(ticks + 2),
                "end_reason": end_reason,
                "exit_code": 0,
                "error": error,
                "orders": {"placed": 20, "filled": 8, "cancelled": 10, "rejected": 2},
                "rejections": rejections if rejections is not None else {"RISK_MAX_NOTIONAL": 2},
                "fills": len(fills),
                "fees": sum(f["fee"] for f in fills),
                "funding": -0.125,
                "realized_pnl": sum(f["realized_pnl"] for f in fills),
                "unrealized_pnl": 0.0,
                "net_pnl": net_pnl
                if net_pnl is not None
                else sum(f["realized_pnl"] - f["fee"] for f in fills) - 0.125,
                "start_equity": 10_000.0,
                "end_equity": equity,
                "final_positions": {},
            }
        )
    journal.close()
    return journal.dir


def event(ts: float, action: str, code: str, sentence: str = "why") -> dict[str, Any]:
    return {
        "layer": "test",
        "action": action,
        "code": code,
        "sentence": sentence,
        "data": {},
        "ts": ts,
        "kind": "decision",
    }


def read_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
