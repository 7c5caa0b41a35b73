"""What `perpbot kill` does, without any CLI framework: set the switch first, then report.

Both the Typer command (perpbot/cli/kill.py) and the fast entry (perpbot/cli/kill_fast.py,
argparse, for the plain ``perpbot kill [--level --reason --profile --run --wait --json]``)
call ``set_switch``. The KILL file is what the bots act on, so this module loads only what
writing it needs (perpbot/kill/sentinel.py and the standard library); what comes after the
write (the alert, ``--direct``, waiting for the bots' acknowledgements, the lines to print:
perpbot/kill/outcome.py) loads once the file is written. When the KILL file cannot be
written, perpbot/kill/fallback.py stops the bots another way. ``--clear``/``perpbot resume``
are perpbot/kill/resume.py, ``--show`` is perpbot/kill/outcome.py. Each returns the JSON
document and the lines to print; failures raise a PerpbotError. Only ``--direct`` imports
the exchange stack.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from perpbot.errors import BadInput, PerpbotError
from perpbot.kill.sentinel import LEVELS, new_entry, who_am_i, write_sentinel

if TYPE_CHECKING:
    from perpbot.kill.describe import Output

# ``--direct``: act on the exchange itself, ``(entry, **direct_args) -> report``. The command
# hands it over (perpbot/cli/kill_fast.py ``act_direct``: perpbot/app/kill_direct.py, the
# exchange stack), so this package never imports the composition root that connects.
DirectAct = Callable[..., dict[str, Any]]

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
    act_direct: DirectAct,
) -> tuple[Output, list[str]]:
    """Write the sentinel, act directly if asked (``act_direct(entry, **direct_args)``), wait
    for acks: ((doc, lines), failures)."""
    check_level_and_wait(level, wait)
    entry = new_entry(level, reason or f"manual kill by {who_am_i()}", scope=scope)
    try:
        sentinel = write_sentinel(entry)
    except OSError as exc:
        # lazy: only when the KILL file cannot be written (signals the bots instead)
        from perpbot.kill.fallback import stop_without_sentinel

        return stop_without_sentinel(
            entry, exc, wait=wait, direct_args=direct_args, act_direct=act_direct
        )
    # lazy: loaded once the KILL file is written (the bots act on the file, not on this):
    # `perpbot kill`'s latency is its start-up up to the write
    from perpbot.kill.outcome import after_set

    return after_set(entry, sentinel, wait=wait, direct_args=direct_args, act_direct=act_direct)


def fail_if(failures: list[str]) -> None:
    if failures:
        raise PerpbotError("; ".join(failures))
