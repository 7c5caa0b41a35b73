"""Acknowledgements: how a running bot tells `perpbot kill` what it did.

Each run's watchdog writes ``<state>/kill/acks/<run_id>.json`` (atomically) when it sees a
sentinel and again when it has acted: the entry it obeyed, what it cancelled and closed,
and how long that took. `perpbot kill --wait` lists the running bots from their status files
(``<state>/bots``) and waits for each one's acknowledgement of a standing entry.

Light on purpose: it is on the `perpbot kill` path (stdlib and perpbot helpers only).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from perpbot.fsutil import atomic_write_json
from perpbot.kill.describe import (
    describe_countdown,
    describe_problems,
    describe_waits,
    left_behind,
)
from perpbot.kill.sentinel import LEVEL_RANK, KillEntry, Sentinel, kill_dir
from perpbot.paths import state_path
from perpbot.procs import pid_alive

FINAL_STATES = ("done", "halted", "failed")
LIVE_STATES = ("starting", "running")


def acks_dir() -> Path:
    path = kill_dir() / "acks"
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_ack(run_id: str, doc: dict[str, Any]) -> None:
    # readable by `perpbot kill` run by another OS user on the same state dir
    atomic_write_json(acks_dir() / f"{run_id}.json", doc, mode=0o644)


def read_ack(run_id: str) -> dict[str, Any] | None:
    """A bot's acknowledgement, or None (read only: creates nothing, raises nothing)."""
    try:
        path = state_path() / "kill" / "acks" / f"{run_id}.json"
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def bot_documents() -> list[dict[str, Any]]:
    """Every status document in ``<state>/bots`` (running or ended), unreadable ones skipped."""
    out: list[dict[str, Any]] = []
    for path in sorted((state_path() / "bots").glob("*.json")):  # read only: no mkdir
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(doc, dict):
            out.append(doc)
    return out


def running_bots() -> list[dict[str, Any]]:
    """Status documents of bots that are running on this host (their pid is alive)."""
    return [
        doc
        for doc in bot_documents()
        if doc.get("state") in LIVE_STATES and pid_alive(doc.get("pid"))
    ]


def bot_entry(sentinel: Sentinel, bot: dict[str, Any]) -> KillEntry | None:
    """The entry a bot obeys (the strongest that matches it), or None."""
    return sentinel.match(
        profile=bot.get("profile"), run_id=bot.get("run_id"), strategy=bot.get("strategy")
    )


def acknowledged(ack: dict[str, Any] | None, sentinel: Sentinel, entry: KillEntry) -> bool:
    """Has this ack answered ``entry`` (or a standing entry at least as strong)?"""
    if not ack or ack.get("state") not in FINAL_STATES:
        return False
    standing = {e.id for e in sentinel.entries}
    return ack.get("entry_id") in standing and LEVEL_RANK.get(
        str(ack.get("level")), -1
    ) >= LEVEL_RANK.get(entry.level, 0)


def wait_for_acks(
    sentinel: Sentinel,
    bots: list[dict[str, Any]],
    timeout_s: float,
    *,
    poll_s: float = 0.02,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(acks received, bots that did not answer) within ``timeout_s``."""
    pending = {b["run_id"]: b for b in bots}
    got: list[dict[str, Any]] = []
    gone: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout_s
    while pending:
        for run_id, bot in list(pending.items()):
            entry = bot_entry(sentinel, bot)
            ack = read_ack(run_id)
            if entry is None:
                got.append({"run_id": run_id, "state": "not covered"})
            elif acknowledged(ack, sentinel, entry):
                got.append(ack or {})
            elif not pid_alive(bot.get("pid")):
                gone.append({**bot, "exited": True})
            else:
                continue
            del pending[run_id]
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(poll_s)
    return got, gone + list(pending.values())


def describe_actions(ack: dict[str, Any]) -> list[str]:
    """What a bot did about the switch, as sentence parts (no subject)."""
    parts: list[str] = []
    if ack.get("state") == "halted":
        parts.append(f"halted with {ack.get('open_orders', 0)} open order(s) left standing")
    cancelled = ack.get("cancelled") or []
    if ack.get("level") in ("cancel", "flatten"):
        symbols = sorted({str(c.get("symbol")) for c in cancelled if c.get("symbol")})
        parts.append(
            f"cancelled {len(cancelled)} order(s)"
            + (f" on {', '.join(symbols)}" if symbols else "")
        )
    for c in ack.get("closed") or []:
        parts.append(f"closed {c.get('symbol')} {c.get('from', 0):+g} -> {c.get('to', 0):+g}")
    parts.extend(left_behind(ack))
    parts.extend(describe_waits(ack.get("waits_cut") or [], ack.get("waits_waited") or []))
    if ack.get("countdown"):
        parts.append(describe_countdown(ack["countdown"]))
    parts.extend(describe_problems(ack.get("errors") or []))
    return parts


def ack_failures(ack: dict[str, Any]) -> list[str]:
    """Why `perpbot kill` must not call this acknowledgement a success (empty: it is one)."""
    name = f"bot {ack.get('run_id')} ({ack.get('strategy')}, pid {ack.get('pid')})"
    out = [f"{name}: {text}" for text in left_behind(ack)]
    if ack.get("errors") and not out:
        out.append(f"{name}: {ack['errors'][0]}")
    return out


def describe_ack(ack: dict[str, Any]) -> str:
    """One line for `perpbot kill`: which bot acknowledged, how fast, and what it did."""
    if ack.get("state") == "not covered":
        return f"bot {ack.get('run_id')}: not covered by the switch's scope"
    head = (
        f"bot {ack.get('run_id')} ({ack.get('strategy')}, pid {ack.get('pid')}) "
        f"acknowledged level {ack.get('level')}"
    )
    if ack.get("acted_ms") is not None:
        head += f" in {ack['acted_ms']:.0f} ms"
    return "; ".join([head, *describe_actions(ack)])
