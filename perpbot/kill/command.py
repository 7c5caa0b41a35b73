"""What `perpbot kill` and `perpbot resume` do, without any CLI framework.

Both the Typer command (perpbot/cli/kill.py) and the fast entry (perpbot/cli/entry.py, which
skips Typer for the plain ``perpbot kill [--level --reason --profile --run --wait --json]``)
call these. Each returns the JSON document and the lines to print; failures raise a
PerpbotError. Only ``--direct`` imports the exchange stack.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, NoReturn

from perpbot.errors import BadInput, PerpbotError, RuntimeFailure
from perpbot.kill.acks import (
    ack_failures,
    bot_entry,
    describe_ack,
    read_ack,
    running_bots,
    wait_for_acks,
)
from perpbot.kill.describe import describe_countdown, describe_waits, left_behind
from perpbot.kill.fallback import find_bots, stop_bots
from perpbot.kill.sentinel import (
    CLEAR_HINT,
    LEVELS,
    KillEntry,
    clear_sentinel,
    describe_scope,
    history_path,
    new_entry,
    read_sentinel,
    who_am_i,
    write_sentinel,
)
from perpbot.paths import ENV_HOME, state_path

Output = tuple[dict[str, Any], list[str]]
DEFAULT_WAIT_S = 5.0
MAX_WAIT_S = 3600.0


def scope_of(profile: str | None, run: str | None) -> str:
    if profile and run:
        raise BadInput("--profile and --run: give one of them (the switch covers one scope)")
    if profile:
        return f"profile:{profile}"
    if run:
        return f"run:{run}"
    return "all"


def check_level_and_wait(level: str, wait: float) -> None:
    if level not in LEVELS:
        raise BadInput(f"--level: got {level!r}, expected one of {', '.join(LEVELS)}")
    if not (0 <= wait <= MAX_WAIT_S):
        raise BadInput(
            f"--wait: got {wait:g}, expected a number of seconds from 0 to {MAX_WAIT_S:g}"
        )


def emit(json_output: bool, out: Output) -> None:
    doc, lines = out
    if json_output:
        print(json.dumps(doc, sort_keys=True, default=str), flush=True)
    else:
        for line in lines:
            print(line, flush=True)


def set_switch(
    *,
    level: str,
    reason: str | None,
    scope: str,
    wait: float,
    direct_args: dict[str, Any] | None = None,
) -> tuple[Output, list[str]]:
    """Write the sentinel, act directly if asked, wait for acks: ((doc, lines), failures)."""
    check_level_and_wait(level, wait)
    entry = new_entry(level, reason or f"manual kill by {who_am_i()}", scope=scope)
    try:
        sentinel = write_sentinel(entry)
    except OSError as exc:
        return stop_without_sentinel(entry, exc, wait=wait, direct_args=direct_args)
    effective = next((e for e in sentinel.entries if e.scope == scope), entry)
    if effective.id == entry.id:
        head = f"kill switch set: level {entry.level} for {describe_scope(scope)}: {entry.reason}"
    else:
        head = f"kill switch already set for {describe_scope(scope)}: {effective.describe()}"
    lines = [head, f"bots refuse to start until it is cleared; {CLEAR_HINT}"]
    doc: dict[str, Any] = {"sentinel": sentinel.to_dict(), "entry": effective.to_dict()}
    failures: list[str] = []
    # the bots to wait for, listed before --direct acts (they may have stopped by then)
    bots = [b for b in running_bots() if bot_entry(sentinel, b) is not None]
    if direct_args is not None:
        from perpbot.kill.direct import run_direct  # lazy: the exchange stack, --direct only

        report = run_direct(effective, **direct_args)
        doc["direct"] = report
        lines.extend(describe_direct(report))
        failures.extend(direct_failures(report))
    if not bots:
        lines.append("no running bot is covered by the switch")
    elif wait == 0:
        lines.append(f"{len(bots)} running bot(s) covered; not waiting (--wait 0)")
        doc["bots"] = [b.get("run_id") for b in bots]
    else:
        got, missing = wait_for_acks(sentinel, bots, wait)
        lines.extend(describe_ack(a) for a in got)
        for ack in got:
            failures.extend(ack_failures(ack))
        for bot in missing:
            what = "exited" if bot.get("exited") else f"did not acknowledge within {wait:g} s"
            name = f"bot {bot.get('run_id')} ({bot.get('strategy')}, pid {bot.get('pid')})"
            lines.append(f"{name} {what}")
            failures.append(
                f"{name} {what}: it may be wedged; `perpbot kill --direct` cancels on the "
                "exchange itself"
            )
        doc["acks"], doc["missing"] = got, missing
    if doc.get("direct"):
        lines.extend(direct_countdown_lines(doc["direct"], doc.get("acks") or []))
    return (doc, lines), failures


def stop_without_sentinel(
    entry: KillEntry,
    error: OSError,
    *,
    wait: float,
    direct_args: dict[str, Any] | None,
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
        report, direct_lines, direct_failed = direct_in_temporary_home(entry, direct_args)
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
    entry: KillEntry, direct_args: dict[str, Any]
) -> tuple[dict[str, Any] | None, list[str], list[str]]:
    """``--direct`` with the state dir unwritable: its signed request log and rate budget
    go to a temporary directory (named in the output); key profiles live in the keyring."""
    import tempfile

    try:
        temp_home = tempfile.mkdtemp(prefix="perpbot-kill-")
    except OSError as exc:
        line = f"--direct not attempted: no writable temporary directory ({exc.strerror or exc})"
        return None, [line], [line]
    saved = os.environ.get(ENV_HOME)
    os.environ[ENV_HOME] = temp_home
    try:
        from perpbot.kill.direct import run_direct  # lazy: the exchange stack, --direct only

        report = run_direct(entry, **direct_args)
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


def describe_direct(report: dict[str, Any]) -> list[str]:
    where = report.get("url") or report.get("exchange")
    symbols = ", ".join(report.get("symbols") or []) or "no symbol"
    parts = [
        f"direct on {where}: cancelled {len(report.get('cancelled') or [])} order(s) on {symbols}"
    ]
    for c in report.get("closed") or []:
        parts.append(f"closed {c.get('symbol')} {c.get('from', 0):+g} -> {c.get('to', 0):+g}")
    lines = ["; ".join(parts)]
    lines.extend(
        f"direct on {where}: {w}"
        for w in describe_waits(report.get("waits_cut") or [], report.get("waits_waited") or [])
    )
    left = left_behind(report)
    if left:
        lines.append(f"direct on {where}: " + "; ".join(left))
    return lines


def direct_countdown_lines(report: dict[str, Any], acks: list[dict[str, Any]]) -> list[str]:
    """When the exchange's countdown cancels what ``--direct`` left: the bots' acks say when
    for the symbols their countdown covers; for the others, what is known in general."""
    where = report.get("url") or report.get("exchange")
    symbols = {str(o.get("symbol")) for o in report.get("left_open") or []}
    symbols |= set(report.get("unconfirmed") or [])
    lines = []
    for ack in acks:
        cover = ack.get("countdown") or {}
        armed = sorted(symbols & set(cover.get("armed") or []))
        if armed and cover.get("fires_by") is not None:
            lines.append(
                f"direct on {where}: as bot {ack.get('run_id')} acknowledged, "
                + describe_countdown({**cover, "armed": armed, "uncovered": []})
            )
            symbols -= set(armed)
    if symbols:
        lines.append(f"direct on {where}: {', '.join(sorted(symbols))}: {DIRECT_COUNTDOWN_NOTE}")
    return lines


DIRECT_COUNTDOWN_NOTE = (
    "if a bot armed the exchange's dead-man countdown there (Binance "
    "countdownCancelAll, [kill] deadman_countdown_s, 60 s by default) and has stopped "
    "refreshing it, the exchange cancels the orders left there within that countdown of its "
    "last refresh (see that bot's acknowledgement); otherwise they stay until cancelled"
)


def direct_failures(report: dict[str, Any]) -> list[str]:
    out = [f"--direct: {text}" for text in left_behind(report)]
    if not out:
        out.extend(f"--direct: {e}" for e in report.get("errors", []))
    return out


def clear_switch(reason: str | None, scope: str | None, *, confirmed: bool) -> Output:
    """Remove the switch (or one scope's entry); ``confirmed`` is --yes (or a prompt)."""
    current = read_sentinel()
    if current is None:
        return {"cleared": [], "left": None}, ["the kill switch is not set"]
    if not confirmed:
        raise BadInput(
            "--clear needs --yes: clearing the kill switch lets bots trade again "
            f"(it stands: {current.describe()})"
        )
    try:
        removed = clear_sentinel(reason or f"cleared by {who_am_i()}", scope=scope)
    except OSError as exc:
        raise RuntimeFailure(
            f"the kill switch could not be cleared ({exc.filename or state_path()}: "
            f"{exc.strerror or exc}): it still stands"
        ) from None
    left = read_sentinel()
    if removed:
        lines = [f"kill switch cleared: {e.describe()}" for e in removed]
        lines.append(f"recorded in {history_path()}")
    else:
        lines = [f"no kill switch for {describe_scope(scope or 'all')}"]
    if left is not None:
        lines.append(f"still set: {left.describe()}")
    doc = {"cleared": [e.to_dict() for e in removed], "left": left.to_dict() if left else None}
    return doc, lines


def show_switch() -> Output:
    sentinel = read_sentinel()
    lines = [f"kill switch: {sentinel.describe()}" if sentinel else "kill switch: clear"]
    doc: dict[str, Any] = {"sentinel": sentinel.to_dict() if sentinel else None, "bots": []}
    for bot in running_bots():
        entry = bot_entry(sentinel, bot) if sentinel else None
        ack = read_ack(str(bot.get("run_id")))
        state = f"covered ({entry.level})" if entry else "not covered"
        if entry and ack and ack.get("entry_id") == entry.id:
            state += f", acknowledged: {ack.get('state')}"
        name = f"bot {bot.get('run_id')} ({bot.get('strategy')}, pid {bot.get('pid')})"
        lines.append(f"{name}: {state}")
        doc["bots"].append({"run_id": bot.get("run_id"), "covered": bool(entry), "ack": ack})
    return doc, lines


def fail_if(failures: list[str]) -> None:
    if failures:
        raise PerpbotError("; ".join(failures))


class _BadUsage(Exception):
    """argparse could not read the arguments: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _BadUsage(message)


# Options of `perpbot kill` that the Typer command handles (the fast path only recognises
# them, so that a typo is reported here in one line rather than passed on).
TYPER_ONLY = ("direct", "strategy", "url", "exchange", "symbol", "clear", "yes", "show", "help")


def kill_parser() -> argparse.ArgumentParser:
    """Every option of `perpbot kill`; the plain ones are acted on here."""
    parser = _Parser(prog="perpbot kill", add_help=False, allow_abbrev=False)
    parser.add_argument("--level", "-l", default="cancel")
    parser.add_argument("--reason", "-r")
    parser.add_argument("--profile", "-p")
    parser.add_argument("--run")
    parser.add_argument("--wait", "-w", type=float, default=DEFAULT_WAIT_S)
    parser.add_argument("--json", action="store_true", dest="json_output")
    for flag in ("--direct", "--clear", "--show"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--yes", "-y", action="store_true")
    parser.add_argument("--help", "-h", action="store_true")
    for option in ("--strategy", "--url", "--exchange"):
        parser.add_argument(option)
    parser.add_argument("--symbol", "-s", action="append")
    return parser


def fast_kill(argv: list[str]) -> int | None:
    """`perpbot kill` without Typer, for the plain form only; None: let Typer handle it.

    Typer imports pydantic to coerce any command's parameters, which alone costs more than
    setting the switch. The plain form (``--level --reason --profile --run --wait --json``)
    is parsed here with argparse; ``--direct``, ``--clear``, ``--show`` and ``--help`` go to
    the Typer command; arguments argparse cannot read (a typo, a missing value, a wait that
    is not a number) are reported here in one line (exit 2).
    """
    try:
        args = kill_parser().parse_args(argv)
    except _BadUsage as exc:
        print(f"perpbot: error: perpbot kill: {exc}", file=sys.stderr, flush=True)
        return BadInput.exit_code
    if any(getattr(args, name) for name in TYPER_ONLY):
        return None
    try:
        out, failures = set_switch(
            level=args.level,
            reason=args.reason,
            scope=scope_of(args.profile, args.run),
            wait=args.wait,
        )
        emit(args.json_output, out)
        fail_if(failures)
    except PerpbotError as exc:
        print(f"perpbot: error: {exc.message}", file=sys.stderr, flush=True)
        return exc.exit_code
    return 0
