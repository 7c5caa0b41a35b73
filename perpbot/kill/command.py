"""What `perpbot kill` and `perpbot resume` do, without any CLI framework.

Both the Typer command (perpbot/cli/kill.py) and the fast entry (perpbot/cli/kill_fast.py,
argparse, for the plain ``perpbot kill [--level --reason --profile --run --wait --json]``)
call these; when the KILL file cannot be written, perpbot/kill/fallback.py stops the bots.
Each returns the JSON document and the lines to print; failures raise a PerpbotError. Only
``--direct`` imports the exchange stack.
"""

from __future__ import annotations

import json
from typing import Any

from perpbot.alerts.outbox import post as post_alert
from perpbot.errors import BadInput, PerpbotError, RuntimeFailure
from perpbot.kill.acks import (
    ack_failures,
    bot_entry,
    describe_ack,
    read_ack,
    running_bots,
    wait_for_acks,
)
from perpbot.kill.describe import describe_direct, direct_countdown_lines, direct_failures
from perpbot.kill.fallback import Output, stop_without_sentinel
from perpbot.kill.sentinel import (
    CLEAR_HINT,
    LEVELS,
    clear_sentinel,
    describe_scope,
    history_path,
    new_entry,
    read_sentinel,
    who_am_i,
    write_sentinel,
)
from perpbot.paths import state_path

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
    if effective.id == entry.id:  # after the write: the bots act on the file, not on this
        post_alert("KILL_SET", "critical", f"{head} (set by {entry.who})")
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
    if failures:
        post_alert(
            "KILL_LEFT_OPEN", "critical", "perpbot kill left work undone: " + "; ".join(failures)
        )
    return (doc, lines), failures


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
        for line in lines:
            post_alert("KILL_CLEARED", "warning", f"{line} ({reason or who_am_i()})")
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
