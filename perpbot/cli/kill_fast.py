"""The plain `perpbot kill`, parsed with argparse before any CLI framework loads.

Setting the kill switch is the one command whose start-up time is a safety property, and
Typer imports pydantic to coerce any command's parameters, which alone costs more than
setting the switch. perpbot/cli/entry.py hands ``perpbot kill ...`` to ``fast_kill`` here:
the plain form (``--level --reason --profile --run --wait --json``) is acted on at once
(perpbot/kill/command.py); ``--direct``, ``--clear``, ``--show`` and ``--help`` go to the
Typer command (perpbot/cli/kill.py); arguments argparse cannot read (a typo, a missing
value, a wait that is not a number) are one line on stderr, exit 2.

Standard library and perpbot's light kill modules only: no ccxt, aiohttp, pydantic, rich
or typer.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, NoReturn

from perpbot.errors import EXIT_OK, BadInput, PerpbotError
from perpbot.kill.command import DEFAULT_WAIT_S, emit, fail_if, scope_of, set_switch

if TYPE_CHECKING:
    from perpbot.kill.sentinel import KillEntry


class _BadUsage(Exception):
    """argparse could not read the arguments: one line, exit 2."""


class _FixedWidth(argparse.HelpFormatter):
    """This parser never prints help (``--help`` goes to Typer), so its formatter needs no
    terminal width: asking for one makes argparse import shutil (and bz2, lzma) on every
    ``add_argument``, before the KILL file is written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=100)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _BadUsage(message)


# Options of `perpbot kill` that the Typer command handles (the fast path only recognises
# them, so that a typo is reported here in one line rather than passed on).
TYPER_ONLY = ("direct", "strategy", "url", "exchange", "symbol", "clear", "yes", "show", "help")


def kill_parser() -> argparse.ArgumentParser:
    """Every option of `perpbot kill`; the plain ones are acted on here."""
    parser = _Parser(
        prog="perpbot kill", add_help=False, allow_abbrev=False, formatter_class=_FixedWidth
    )
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


def act_direct(entry: KillEntry, **direct_args: Any) -> dict[str, Any]:
    """``--direct``: connect with the profile's kill grant and act on the exchange
    (perpbot/app/kill_direct.py); handed to ``set_switch`` so perpbot.kill never imports the
    composition root."""
    # lazy: the exchange stack (ccxt, ~1 s) loads only to act on the exchange, after the
    # KILL file is written
    from perpbot.app.kill_direct import run_direct

    return run_direct(entry, **direct_args)


def fast_kill(argv: list[str]) -> int | None:
    """The exit code of the plain `perpbot kill`, or None: let the Typer command handle it."""
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
            act_direct=act_direct,  # (the fallback acts for a profile's kill)
        )
        emit(args.json_output, out)
        fail_if(failures)
    except PerpbotError as exc:
        print(f"perpbot: error: {exc.message}", file=sys.stderr, flush=True)
        return exc.exit_code
    return EXIT_OK
