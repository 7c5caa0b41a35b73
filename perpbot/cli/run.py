"""`perpbot run STRATEGY.toml`: run a bot until Ctrl-C, SIGTERM or --duration."""

from __future__ import annotations

import os
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
    # lazy: `perpbot --help` must not load the engine, the pipeline or ccxt
    from perpbot.app.run import run_strategy

    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.cli.verbose import attach_verbose

    code = run_strategy(
        strategy_file,
        duration=duration,
        json_output=json_output,
        plain=plain,
        observe=attach_verbose if os.environ.get("PERPBOT_VERBOSE") else None,
    )
    if code:
        raise typer.Exit(code)
