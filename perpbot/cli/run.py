"""`perpbot run STRATEGY.toml`: run a bot until Ctrl-C, SIGTERM or --duration."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    app.command("run")(run)


def run(
    strategy_file: Path = typer.Argument(..., help="The strategy.toml to run."),
    duration: float | None = typer.Option(
        None, "--duration", "-d", help="Stop after this many seconds (default: until Ctrl-C)."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print only one JSON summary object on stdout."
    ),
    plain: bool = typer.Option(False, "--plain", help="Plain lines even on a terminal."),
) -> None:
    """Run a strategy (paper trading on the embedded simulator by default)."""
    import asyncio

    from perpbot.config import load_strategy
    from perpbot.engine import plugins
    from perpbot.engine.loader import instantiate
    from perpbot.engine.output import RunOutput
    from perpbot.engine.runner import Runner
    from perpbot.errors import BadInput, PerpbotError
    from perpbot.harden import no_core_dumps

    no_core_dumps()  # the API secret is in this process's memory: no core file may hold it
    if duration is not None and not 0 < duration < float("inf"):  # (NaN compares false)
        raise BadInput(f"--duration: got {duration:g}, expected a number of seconds > 0")
    loaded = load_strategy(strategy_file)
    strategy = instantiate(loaded)
    plugins.preflight(loaded)
    mode = "json" if json_output else ("live" if sys.stdout.isatty() and not plain else "plain")
    output = RunOutput(mode)
    runner = Runner(loaded, strategy, output=output, duration=duration)
    plugins.attach(runner)
    if os.environ.get("PERPBOT_VERBOSE"):
        from perpbot.cli.verbose import attach_verbose

        attach_verbose(runner.bus)
    asyncio.run(runner.run())
    if runner.fatal is not None and runner.exit_code != 0:
        raise PerpbotError(runner.fatal.message) if runner.fatal.exit_code == 1 else runner.fatal
    if runner.exit_code:
        raise typer.Exit(runner.exit_code)
