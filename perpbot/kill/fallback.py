"""`perpbot kill` when the KILL file cannot be written: stop the bots another way.

A full disk, a read-only state dir, or a file where the state dir should be: the switch
cannot be set, so running bots would not see it and a bot started now would trade. The
emergency stop must still work exactly when the machine is in trouble, so `perpbot kill`:

1. lists the running bots the kill covers from what they left in the state dir, reading
   only: their status files (``<state>/bots/*.json``) and run folders
   (``<state>/runs/*/meta.json`` without a ``summary.json``); a pid counts only if that
   process is alive and started no later than the run (a reused pid is not signalled);
2. sends each one SIGTERM: a bot's clean stop cancels its own open orders (it does not close
   positions, whatever the level);
3. waits up to ``--wait`` seconds for each to exit;
4. acts on the exchange itself (``--direct``) when asked, or when the kill names a profile;
   its signed request log and rate budget go to a temporary directory, named in the output;

printing one line per action. It always exits 1: the switch is not standing.

Standard library and perpbot's light modules only: this is on the `perpbot kill` path.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perpbot.errors import PerpbotError
from perpbot.kill.describe import (
    Output,
    describe_direct,
    direct_countdown_lines,
    direct_failures,
)
from perpbot.kill.sentinel import KillEntry
from perpbot.paths import ENV_HOME, state_path
from perpbot.procs import pid_alive

if TYPE_CHECKING:
    from perpbot.kill.command import DirectAct

LIVE_STATES = ("starting", "running", "stopping")


@dataclass(slots=True)
class BotProcess:
    run_id: str
    strategy: str | None
    profile: str | None
    pid: int
    started_at: float | None
    host: str | None

    @property
    def name(self) -> str:
        return f"bot {self.run_id} ({self.strategy}, pid {self.pid})"

    def alive(self) -> bool:
        return pid_alive(self.pid, self.host, self.started_at) and not zombie(self.pid)


def zombie(pid: int) -> bool:
    """An exited process its parent has not reaped yet (Linux /proc; False elsewhere)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[:1] == ["Z"]


def _entries(folder: Path, problems: list[str]) -> list[Path]:
    """The names in ``folder`` (none when it does not exist); a folder that cannot be read
    is a problem: bots recorded there cannot be found."""
    try:
        with os.scandir(folder) as it:
            return sorted(Path(e.path) for e in it)
    except FileNotFoundError:
        return []
    except OSError as exc:
        problems.append(f"cannot list {folder}: {exc.strerror or exc}")
        return []


def _document(path: Path) -> dict[str, Any] | None:
    try:
        with open(path, "rb") as fh:
            doc = json.loads(fh.read(1 << 20))
    except (OSError, ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _ended(run_folder: Path) -> bool:
    """The run wrote its summary (it stopped cleanly); unknown counts as not ended."""
    try:
        return (run_folder / "summary.json").exists()
    except OSError:
        return False


def _bot(doc: dict[str, Any], fallback_id: str) -> BotProcess | None:
    pid = doc.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    started = doc.get("started_at")
    host = doc.get("host")
    return BotProcess(
        run_id=str(doc.get("run_id") or fallback_id),
        strategy=str(doc["strategy"]) if doc.get("strategy") is not None else None,
        profile=str(doc["profile"]) if doc.get("profile") is not None else None,
        pid=pid,
        started_at=float(started) if isinstance(started, int | float) else None,
        host=str(host) if host else None,
    )


def find_bots(home: Path, entry: KillEntry) -> tuple[list[BotProcess], list[str]]:
    """(running bots covered by ``entry``, problems that may hide others)."""
    problems: list[str] = []
    found: dict[str, BotProcess] = {}
    try:
        if not home.is_dir():
            what = "does not exist" if not home.exists() else "is not a directory"
            return [], [f"the state dir {home} {what}: no record of running bots"]
    except OSError as exc:
        return [], [f"the state dir {home} cannot be read ({exc.strerror or exc})"]
    for path in _entries(home / "bots", problems):
        doc = _document(path) if path.suffix == ".json" else None
        if doc is not None and doc.get("state") in LIVE_STATES:
            bot = _bot(doc, path.stem)
            if bot is not None:
                found[bot.run_id] = bot
    for folder in _entries(home / "runs", problems):
        if _ended(folder):
            continue
        doc = _document(folder / "meta.json")
        bot = _bot(doc, folder.name) if doc is not None else None
        if bot is not None:
            found.setdefault(bot.run_id, bot)
    here = socket.gethostname()
    covered = []
    for b in found.values():
        if not entry.matches(profile=b.profile, run_id=b.run_id, strategy=b.strategy):
            continue
        if b.host and b.host != here:
            problems.append(f"{b.name} is recorded on host {b.host}: not signalled from here")
        elif b.alive():
            covered.append(b)
    return covered, problems


def stop_bots(bots: list[BotProcess], wait_s: float, level: str) -> tuple[list[str], list[str]]:
    """SIGTERM each bot and wait for it to exit: (lines, failures)."""
    lines: list[str] = []
    failures: list[str] = []
    sent: list[BotProcess] = []
    for bot in bots:
        try:
            os.kill(bot.pid, signal.SIGTERM)
        except ProcessLookupError:
            lines.append(f"{bot.name} had already exited")
            continue
        except OSError as exc:
            line = f"could not signal {bot.name}: {exc.strerror or exc}; it is still running"
            lines.append(line)
            failures.append(line)
            continue
        note = "its clean stop cancels its own open orders"
        if level == "flatten":
            note += " but does not close its positions"
        elif level == "halt":
            note += " (a halt, which would keep them, needs the KILL file)"
        lines.append(f"sent SIGTERM to {bot.name}: {note}")
        sent.append(bot)
    started = time.monotonic()
    deadline = started + wait_s
    pending = list(sent)
    while pending:
        for bot in list(pending):
            if not bot.alive():
                lines.append(f"{bot.name} exited {time.monotonic() - started:.1f} s after SIGTERM")
                pending.remove(bot)
        if not pending or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    for bot in pending:
        line = f"{bot.name} is still running {wait_s:g} s after SIGTERM"
        lines.append(line)
        failures.append(line)
    return lines, failures


def stop_without_sentinel(
    entry: KillEntry,
    error: OSError,
    *,
    wait: float,
    direct_args: dict[str, Any] | None,
    act_direct: DirectAct,
) -> tuple[Output, list[str]]:
    """The KILL file could not be written: stop the bots another way (see fallback.py)."""
    home = state_path()
    why = f"{error.filename or home}: {error.strerror or error}"
    lines = [
        f"kill switch NOT set: cannot write it ({why}); running bots do not see it and a "
        "bot started now would trade"
    ]
    failures = [f"the kill switch could not be written ({why})"]
    doc: dict[str, Any] = {"sentinel": None, "entry": entry.to_dict(), "write_error": why}
    bots, problems = find_bots(home, entry)
    lines.extend(problems)
    failures.extend(problems)
    if bots:
        stopped, not_stopped = stop_bots(bots, wait, entry.level)
        lines.extend(stopped)
        failures.extend(not_stopped)
    elif not problems:
        lines.append(f"no running bot covered by the kill is recorded in {home}")
    doc["bots"] = [b.run_id for b in bots]
    if direct_args is None and entry.scope.startswith("profile:"):
        profile = entry.scope.partition(":")[2]
        lines.append(f"acting on the exchange with profile {profile} (--direct)")
        direct_args = {"strategy_file": None, "profile": profile, "url": None,
                       "exchange_id": None, "symbols": None}  # fmt: skip
    if direct_args is not None:
        report, direct_lines, direct_failed = direct_in_temporary_home(
            entry, direct_args, act_direct
        )
        doc["direct"] = report
        lines.extend(direct_lines)
        failures.extend(direct_failed)
    elif entry.level == "flatten" or not bots:
        lines.append(
            "nothing acted on the exchange: give --direct (with --profile, --url or "
            "--strategy) to cancel there"
        )
    return (doc, lines), failures


def direct_in_temporary_home(
    entry: KillEntry, direct_args: dict[str, Any], act_direct: DirectAct
) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """``--direct`` with the state dir unwritable: its signed request log and rate budget
    go to a temporary directory (named in the output); key profiles live in the keyring."""
    try:
        temp_home = tempfile.mkdtemp(prefix="perpbot-kill-")
    except OSError as exc:
        line = f"--direct not attempted: no writable temporary directory ({exc.strerror or exc})"
        return None, [line], [line]
    saved = os.environ.get(ENV_HOME)
    os.environ[ENV_HOME] = temp_home
    try:
        report = act_direct(entry, **direct_args)
    except PerpbotError as exc:
        line = f"--direct failed: {exc.message}"
        return None, [line], [line]
    finally:
        if saved is None:
            os.environ.pop(ENV_HOME, None)
        else:
            os.environ[ENV_HOME] = saved
    lines = [f"--direct's signed request log and rate budget are in {temp_home}"]
    lines += describe_direct(report) + direct_countdown_lines(report, [])
    return report, lines, direct_failures(report)
