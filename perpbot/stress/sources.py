"""The scenario's inputs from elsewhere than its file: one name per market, the exchange's
index weights merged into ``[dynamics]``, and the positions of a run folder's last tick
(``ticks.jsonl``). Reading them from an exchange is perpbot.app.stress_live.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from perpbot.errors import BadInput
from perpbot.runfiles import open_journal


def plain(symbol: str) -> str:
    """``BTC/USDT:USDT`` -> ``BTCUSDT``: one name per market in every input."""
    return symbol.split(":")[0].replace("/", "").upper()


def index_weights_into(doc: dict[str, Any], fetched: dict[str, list[float]]) -> list[str]:
    """Put the exchange's index weights into the scenario document's ``[dynamics]``, one
    list per symbol, and say where each symbol's weights come from. They pair with the
    constituents' requote intervals (``mark_sources_s``, which no exchange publishes): used
    when the file states one interval per constituent; weights the file states win."""
    dyn = doc.setdefault("dynamics", {})
    if not isinstance(dyn, dict):
        return []  # the document's own check reports it
    stated = dyn.get("mark_source_weights")
    intervals = dyn.get("mark_sources_s")
    n_stated = len(intervals) if isinstance(intervals, list) else 1
    per_symbol: dict[str, Any] = dict(stated) if isinstance(stated, dict) else {}
    notes = []
    for name, weights in fetched.items():
        shares = "/".join(f"{w:.3g}" for w in weights)
        head = f"{name}: index weights {shares} from the exchange (/fapi/v1/constituents)"
        if stated is not None and (not isinstance(stated, dict) or name in stated):
            notes.append(f"{head}; the file's mark_source_weights are used instead")
        elif "mark_sources_s" not in dyn:
            notes.append(
                f"{head}; not used: every constituent is assumed to requote each second, "
                f"so the weights do not move the mark (state mark_sources_s, "
                f"{len(weights)} intervals, to use them)"
            )
        elif n_stated != len(weights):
            notes.append(
                f"{head}; not used: the exchange lists {len(weights)} constituents, "
                f"mark_sources_s states {n_stated} intervals"
            )
        else:
            per_symbol[name] = weights
            notes.append(head)
    if per_symbol and not isinstance(stated, list | float | int):
        dyn["mark_source_weights"] = per_symbol
    return notes


def run_positions(run_dir: Path) -> list[dict[str, Any]]:
    """This account's positions at a run's last tick (amount, entry, liquidation price)."""
    last: dict[str, Any] | None = None
    try:
        with open_journal(run_dir / "ticks.jsonl") as fh:
            for line in fh:
                try:
                    tick = json.loads(line)
                except ValueError:
                    continue  # a torn last line
                if isinstance(tick, dict) and isinstance(tick.get("positions"), dict):
                    last = tick
    except FileNotFoundError:
        raise BadInput(f"--run: {run_dir.name} has no ticks.jsonl (no tick recorded)") from None
    if last is None:
        raise BadInput(f"--run: {run_dir.name} recorded no positions")
    out = []
    for sym, p in last["positions"].items():
        if not isinstance(p, dict) or not p.get("amount"):
            continue
        liq = p.get("liquidation")
        if not liq or not p.get("entry"):
            continue
        out.append({"symbol": plain(sym), "amount": float(p["amount"]),
                    "entry": float(p["entry"]), "liquidation_price": float(liq)})  # fmt: skip
    return out
