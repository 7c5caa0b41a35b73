"""What `perpbot kill` does once the KILL file is written, and what `--show` says.

``after_set`` is the second half of perpbot/kill/command.py's ``set_switch``: the alert,
``--direct``, waiting for the running bots' acknowledgements (perpbot/kill/acks.py) and the
lines to print. It loads only after the sentinel is written: the bots act on the file, so
nothing here delays them. Standard library and perpbot's light kill modules only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from perpbot.alerts.outbox import post as post_alert
from perpbot.kill.acks import (
    ack_failures,
    bot_entry,
    describe_ack,
    read_ack,
    running_bots,
    wait_for_acks,
)
from perpbot.kill.describe import (
    Output,
    describe_direct,
    direct_countdown_lines,
    direct_failures,
)
from perpbot.kill.sentinel import CLEAR_HINT, KillEntry, Sentinel, describe_scope, read_sentinel

if TYPE_CHECKING:
    from perpbot.kill.command import DirectAct


def after_set(
    entry: KillEntry,
    sentinel: Sentinel,
    *,
    wait: float,
    direct_args: dict[str, Any] | None = None,
    act_direct: DirectAct,
) -> tuple[Output, list[str]]:
    """``entry`` was written and ``sentinel`` now stands: alert, act directly if asked, wait
    for acks: ((doc, lines), failures)."""
    scope = entry.scope
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
        report = act_direct(effective, **direct_args)
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


def show_switch() -> Output:
    """`perpbot kill --show`: the switch, and each running bot's coverage and ack."""
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
