"""The runs under the state dir: list them, say how each ended, find one by id.

How a run ended comes from its ``summary.json`` (written at stop). A run without one is
either still going (its process is alive on this host) or crashed (SIGKILL, power loss, an
engine failure before the stop sequence): the process id in ``meta.json`` tells which. A pid
can be reused after a crash, so on Linux the process must also have started before the run.
"""

from __future__ import annotations

import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from perpbot.errors import BadInput
from perpbot.paths import runs_dir
from perpbot.procs import pid_alive
from perpbot.report.data import JOURNALS, RunData, load_run, read_json_tolerant
from perpbot.report.extras import num

# summary.json end_reason -> (status, label shown to the trader)
ENDINGS = {
    "duration": ("duration", "duration reached"),
    "completed": ("completed", "strategy finished"),
    "interrupted": ("interrupted", "Ctrl-C"),
    "terminated": ("terminated", "SIGTERM"),
    "error": ("error", "error"),
}


@dataclass
class RunInfo:
    run_id: str
    strategy: str | None
    exchange: str | None
    started_at: float | None
    duration_s: float | None
    pnl: float | None
    pnl_final: bool  # False: estimated from the journals (no summary yet)
    status: str  # duration, completed, interrupted, terminated, kill, error, running, crashed
    ended: str  # one line for a trader, e.g. "kill switch: KILL_DRAWDOWN drawdown 6% > 5%"
    dir: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _kill_reason(run: RunData) -> str:
    """Why the kill switch stopped the run: the automatic trip's code and sentence, else
    the switch's own entry (a `perpbot kill` names its reason), else the stop reason."""
    trips = [e for e in run.events if e.get("action") == "trip"]
    if trips:
        last = trips[-1]
        return f"{last.get('code') or 'KILL'}: {last.get('sentence') or ''}".rstrip(": ")
    summ = run.summary or {}
    kill = summ.get("kill")
    if isinstance(kill, dict) and kill.get("reason"):
        code = kill.get("code")
        return f"{code}: {kill['reason']}" if code else str(kill["reason"])
    reason = str(summ.get("end_reason") or "")
    if reason.startswith("kill switch:"):
        return reason.removeprefix("kill switch:").strip()
    return str(summ.get("error") or "reason not recorded")


def how_it_ended(run: RunData) -> tuple[str, str]:
    """(status, one-line label) for a run."""
    summ = run.summary
    if summ is None:
        meta = run.meta
        if pid_alive(meta.get("pid"), meta.get("host"), run.started_at):
            return "running", f"running (pid {meta.get('pid')})"
        if meta.get("host") and meta.get("host") != socket.gethostname():
            return "unknown", f"no summary (ran on host {meta.get('host')})"
        return "crashed", "crashed: no summary (the process died without a clean stop)"
    reason = str(summ.get("end_reason") or "")
    if reason.startswith("kill switch"):  # "kill switch" or "kill switch: <reason>"
        return "kill", f"kill switch: {_kill_reason(run)}"
    status, label = ENDINGS.get(reason, (reason or "unknown", reason or "unknown"))
    if status == "error":
        label = f"error: {summ.get('error') or 'not recorded'}"
    return status, label


def estimated_pnl(run: RunData) -> float | None:
    """Realised PnL minus fees from the fills, plus the last tick's unrealised PnL."""
    if not run.fills and not run.ticks:
        return None
    realized = sum(num(f.get("realized_pnl")) or 0.0 for f in run.fills)
    fees = sum(num(f.get("fee")) or 0.0 for f in run.fills)
    upnl = 0.0
    if run.ticks and isinstance(run.ticks[-1].get("positions"), dict):
        for p in run.ticks[-1]["positions"].values():
            upnl += (num(p.get("upnl")) or 0.0) if isinstance(p, dict) else 0.0
    return realized - fees + upnl


def run_info(run: RunData) -> RunInfo:
    status, label = how_it_ended(run)
    summ = run.summary or {}
    started = run.started_at
    duration = num(summ.get("runtime_s"))
    if duration is None and started is not None:
        end = time.time() if status == "running" else run.last_seen
        duration = max(0.0, (end or started) - started)
    pnl = num(summ.get("net_pnl"))
    final = pnl is not None
    if pnl is None:
        pnl = estimated_pnl(run)
    return RunInfo(
        run_id=run.run_id,
        strategy=run.meta.get("strategy") or summ.get("strategy"),
        exchange=run.meta.get("exchange") or summ.get("exchange"),
        started_at=started,
        duration_s=duration,
        pnl=pnl,
        pnl_final=final,
        status=status,
        ended=label,
        dir=str(run.dir),
    )


def run_dirs() -> list[Path]:
    """Run folders (those with a meta.json or summary.json), oldest first."""
    found: list[tuple[float, str, Path]] = []
    for d in runs_dir().iterdir():
        if not d.is_dir() or not ((d / "meta.json").exists() or (d / "summary.json").exists()):
            continue
        started = num((read_json_tolerant(d / "meta.json", []) or {}).get("started_at"))
        found.append((started if started is not None else d.stat().st_mtime, d.name, d))
    return [d for _, _, d in sorted(found)]


def list_runs() -> list[RunInfo]:
    """Every run, oldest first, reading only the journals each listing line needs."""
    out: list[RunInfo] = []
    for d in run_dirs():
        summ = read_json_tolerant(d / "summary.json", [])
        if summ is None:  # running or crashed: PnL and last sign of life from the journals
            journals: tuple[str, ...] = JOURNALS
        elif str(summ.get("end_reason")).startswith("kill switch"):  # reason: the trip event
            journals = ("events.jsonl",)
        else:
            journals = ()
        out.append(run_info(load_run(d, journals, signed_log=False)))
    return out


def resolve_run(ref: str) -> Path:
    """A run folder from "last", a full run id or a unique prefix of one."""
    dirs = run_dirs()
    if not dirs:
        raise BadInput(f"no runs yet under {runs_dir()} (start one with `perpbot run`)")
    if ref == "last":
        return dirs[-1]
    exact = [d for d in dirs if d.name == ref]
    if exact:
        return exact[0]
    matches = [d for d in dirs if d.name.startswith(ref)] if ref else []
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(d.name for d in matches[:5]) + (", ..." if len(matches) > 5 else "")
        raise BadInput(f"run {ref!r} is ambiguous: it matches {len(matches)} runs ({names})")
    raise BadInput(f"no run matches {ref!r} (`perpbot runs` lists them; or use 'last')")
