"""The `perpbot` command: the Typer app, sub-command registration and the exit-code wrapper.

``main()`` turns every known failure into one line on stderr and the documented exit code:
0 ok, 1 runtime failure, 2 bad input or usage, 3 permission denied, 4 kill switch,
130 interrupted. No traceback reaches a trader; an unexpected one is saved under the state
dir for a bug report (tracebacks never carry local variables, so no secrets).
"""

from __future__ import annotations

import os
from typing import Any

import typer

from perpbot import __version__
from perpbot.cli.lazy import Entry, LazyGroup

# The Typer settings of the app; each command module registers on a Typer with the same ones.
SETTINGS: dict[str, Any] = {
    "rich_markup_mode": None,
    "pretty_exceptions_enable": False,
    "add_completion": False,
}

# -- sub-commands: one module per command group; each ``register(app)`` adds its commands. ------
# name -> the module that registers it and the first paragraph of its help: `perpbot --help`
# lists these without importing any module (perpbot/cli/lazy.py), in this order.
COMMANDS: dict[str, Entry] = {
    "run": Entry(
        "perpbot.cli.run", "Run a strategy (paper trading on the embedded simulator by default)."
    ),
    "kill": Entry(
        "perpbot.cli.kill",
        "Stop automation now: write the kill sentinel, then wait for bots to acknowledge.",
    ),
    "resume": Entry(
        "perpbot.cli.kill",
        "Clear the kill switch (same as `perpbot kill --clear`); halted bots resume.",
    ),
    "report": Entry(
        "perpbot.cli.runs",
        "Draw a run: price and fills, position, equity and drawdown, rate budget, events.",
    ),
    "status": Entry(
        "perpbot.cli.status",
        "Show running bots: positions, liquidation distance, orders, PnL, budget, index, alerts.",
    ),
    "doctor": Entry(
        "perpbot.cli.doctor",
        "Check keyring, clock, state dir, disk, core dumps, alerts and the key; exit 1 on a FAIL.",
    ),
    "flatten": Entry(
        "perpbot.cli.flatten",
        "Close positions now, reduce-only, with an exit policy (docs/exits.md).",
    ),
    "runs": Entry(
        "perpbot.cli.runs", "List past runs: id, strategy, start, duration, PnL and how each ended."
    ),
    "sim": Entry("perpbot.cli.sim", "The loopback exchange simulator."),
    "keys": Entry("perpbot.cli.keys", "API key profiles in the OS keyring, scoped per command."),
    "log": Entry(
        "perpbot.cli.log",
        "The signed request log: verify it, read it, follow it, anchor it, prune it.",
    ),
    "alerts": Entry("perpbot.cli.alerts", "Alert destinations (Apprise URLs in the keyring)."),
    "metrics": Entry("perpbot.cli.metrics", "Prometheus metrics (docs/operations.md)."),
    "risk": Entry("perpbot.cli.risk", "Risk analyses of an account's positions."),
}


class _Commands(LazyGroup):
    entries = COMMANDS
    settings = SETTINGS


app = typer.Typer(
    name="perpbot",
    help="Run crypto perpetual-futures trading bots safely.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    cls=_Commands,
    **SETTINGS,
)

VERBOSE_ENV = "PERPBOT_VERBOSE"


def _version(value: bool) -> None:
    if value:
        print(f"perpbot {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Print every exchange call (redacted) and decision."
    ),
) -> None:
    """perpbot: scoped keys, shared rate budgets, idempotent orders, a signed log, a kill switch.

    State lives in $PERPBOT_HOME (default: the platform's user state dir).
    Exit codes: 0 ok, 1 failure, 2 bad input, 3 permission denied, 4 kill switch, 130 interrupted.
    """
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
