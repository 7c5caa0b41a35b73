"""`perpbot kill` and `perpbot resume`: the emergency stop (logic in perpbot/kill/command.py,
outcome.py for --show, resume.py for --clear).

Module level imports only typer and the standard library. The plain form of `perpbot kill`
does not even reach Typer: perpbot/cli/entry.py hands it to ``perpbot.kill.command``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from perpbot.errors import EXIT_FAIL, BadInput
from perpbot.harden import no_core_dumps


def register(app: typer.Typer) -> None:
    app.command("kill")(kill)
    app.command("resume")(resume)


def kill(
    level: str = typer.Option(
        "cancel", "--level", "-l", help="halt (no new orders), cancel (default), or flatten."
    ),
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why (kept in the record)."),
    profile: str | None = typer.Option(
        None, "--profile", "-p", help="Only bots using this key profile (and --direct's key)."
    ),
    run: str | None = typer.Option(
        None, "--run", help="Only this run id, or every run of this strategy name."
    ),
    wait: float | None = typer.Option(
        None, "--wait", "-w", help="Seconds to wait for bots to acknowledge (default 5; 0: none)."
    ),
    direct: bool = typer.Option(
        False, "--direct", help="Also cancel (and flatten) on the exchange from this process."
    ),
    strategy_file: Path | None = typer.Option(
        None, "--strategy", help="--direct: take [exchange] and symbols from this strategy.toml."
    ),
    url: str | None = typer.Option(None, "--url", help="--direct: a `perpbot sim serve` URL."),
    exchange_id: str | None = typer.Option(None, "--exchange", help="--direct: a ccxt id."),
    symbols: list[str] | None = typer.Option(
        None, "--symbol", "-s", help="--direct: act on these symbols only (repeatable)."
    ),
    clear: bool = typer.Option(False, "--clear", help="Remove the switch (needs --yes)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm --clear."),
    show: bool = typer.Option(False, "--show", help="Show the switch, running bots and acks."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Stop automation now: write the kill sentinel, then wait for bots to acknowledge.

    Levels: halt (no new orders, open ones stay, bots pause), cancel (cancel every open
    order, then allow only cancels; the default), flatten (cancel, then close every position
    with reduce-only orders). The switch stays, across restarts, until
    `perpbot kill --clear --yes`.
    """
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.cli.kill_fast import act_direct
    from perpbot.kill import command
    from perpbot.kill.outcome import show_switch

    scope = command.scope_of(profile, run)
    if show:
        command.emit(json_output, show_switch())
        return
    if clear:
        _clear(reason, yes, scope, json_output)
        return
    if not direct and (strategy_file or url or exchange_id or symbols):
        raise BadInput("--strategy, --url, --exchange and --symbol go with --direct")
    direct_args = None
    if direct:
        no_core_dumps()  # --direct loads the API secret: no core file may hold it
        direct_args = {
            "strategy_file": strategy_file,
            "profile": profile,
            "url": url,
            "exchange_id": exchange_id,
            "symbols": symbols or None,
        }
    out, failures = command.set_switch(
        level=level,
        reason=reason,
        scope=scope,
        wait=command.DEFAULT_WAIT_S if wait is None else wait,
        direct_args=direct_args,
        act_direct=act_direct,
    )
    command.emit(json_output, out)
    command.fail_if(failures)


def _clear(reason: str | None, yes: bool, scope: str, json_output: bool) -> None:
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.kill import command
    from perpbot.kill.resume import clear_switch
    from perpbot.kill.sentinel import read_sentinel

    current = read_sentinel()
    if not yes and current is not None and sys.stdin.isatty():
        if not typer.confirm(f"Clear the kill switch ({current.describe()})?", default=False):
            raise typer.Exit(EXIT_FAIL)
        yes = True
    out = clear_switch(reason, None if scope == "all" else scope, confirmed=yes)
    command.emit(json_output, out)


def resume(
    reason: str | None = typer.Option(None, "--reason", "-r", help="Why (kept in the history)."),
    profile: str | None = typer.Option(None, "--profile", "-p", help="Clear only this profile's."),
    run: str | None = typer.Option(None, "--run", help="Clear only this run's (or strategy's)."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Confirm."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Clear the kill switch (same as `perpbot kill --clear`); halted bots resume."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.kill import command

    _clear(reason, yes, command.scope_of(profile, run), json_output)
