"""The `perpbot` command: the Typer app, sub-command registration and the exit-code wrapper.

``main()`` turns every known failure into one line on stderr and the documented exit code:
0 ok, 1 runtime failure, 2 bad input or usage, 3 permission denied, 4 kill switch,
130 interrupted. No traceback reaches a trader; an unexpected one is saved under the state
dir for a bug report (tracebacks never carry local variables, so no secrets).
"""

from __future__ import annotations

import os
import sys

import typer

from perpbot import __version__
from perpbot.cli.errors import run_app

app = typer.Typer(
    name="perpbot",
    help="Run crypto perpetual-futures trading bots safely.",
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
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


# -- sub-commands: one module per command group; register each with one line here ------------
from perpbot.cli import run as _run  # noqa: E402

_run.register(app)
# (further command groups register below)
from perpbot.cli import kill as _kill  # noqa: E402

_kill.register(app)
from perpbot.cli import runs as _runs  # noqa: E402

_runs.register(app)
from perpbot.cli import sim as _sim  # noqa: E402

_sim.register(app)
from perpbot.cli import keys as _keys  # noqa: E402

_keys.register(app)
from perpbot.cli import log as _log  # noqa: E402

_log.register(app)
from perpbot.cli import status as _status  # noqa: E402

_status.register(app)
from perpbot.cli import alerts as _alerts  # noqa: E402

_alerts.register(app)
from perpbot.cli import doctor as _doctor  # noqa: E402

_doctor.register(app)
from perpbot.cli import metrics as _metrics  # noqa: E402

_metrics.register(app)
from perpbot.cli import flatten as _flatten  # noqa: E402

_flatten.register(app)
from perpbot.cli import risk as _risk  # noqa: E402

_risk.register(app)


def main(argv: list[str] | None = None) -> None:
    sys.exit(run_app(app, argv))


if __name__ == "__main__":
    main()
