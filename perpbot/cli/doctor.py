"""`perpbot doctor`: check this machine before going live (perpbot.app.doctor)."""

from __future__ import annotations

from pathlib import Path

import typer

from perpbot.errors import EXIT_FAIL


def register(app: typer.Typer) -> None:
    app.command("doctor")(doctor)


def doctor(
    strategy: Path | None = typer.Argument(
        None, help="A strategy.toml: also check its exchange's clock, key and alerts."
    ),
    json_output: bool = typer.Option(False, "--json", help="Print the checks as JSON."),
) -> None:
    """Check keyring, clock, state dir, disk, core dumps, alerts and the key; exit 1 on a FAIL."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.app.doctor import as_json, run_checks
    from perpbot.config import load_strategy

    loaded = load_strategy(strategy) if strategy is not None else None
    checks = run_checks(loaded)
    if json_output:
        print(as_json(checks))
    else:
        for check in checks:
            print(check.line())
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(EXIT_FAIL)
