"""`perpbot risk stress`: a liquidation-cascade stress test (logic: perpbot/stress)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

risk_app = typer.Typer(
    help="Risk analyses of an account's positions.", no_args_is_help=True, rich_markup_mode=None
)


def register(app: typer.Typer) -> None:
    app.add_typer(risk_app, name="risk")


@risk_app.command("stress")
def stress(
    scenario_file: Path | None = typer.Argument(
        None,
        help="A TOML or JSON scenario (docs/stress.md): positions, books, crowd, correlations, "
        "latency_ms, dynamics, shocks. With --profile or --run it supplies the rest.",
    ),
    profile: str | None = typer.Option(
        None, "--profile", "-p", help="Read positions, books and open interest live with this key."
    ),
    url: str | None = typer.Option(None, "--url", help="A `perpbot sim serve` URL (with -p)."),
    run: str | None = typer.Option(
        None, "--run", help="Take the positions of a run's last tick (id, prefix or 'last')."
    ),
    symbols: list[str] | None = typer.Option(
        None, "--symbol", "-s", help="Also stress this symbol (live; repeatable)."
    ),
    shocks: list[float] | None = typer.Option(
        None, "--shock", help="A price shock in percent, e.g. -3 (repeatable)."
    ),
    latency_ms: float | None = typer.Option(
        None, "--latency-ms", help="How long the bot needs to act (default: the file's, 500)."
    ),
    plot: Path | None = typer.Option(None, "--plot", help="Write the plot (PNG) here."),
    json_output: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Where a liquidation cascade starts, how far it goes, and when it reaches your positions.

    Shocks the price, follows the crowd's liquidations through the order books (and across
    correlated symbols), and says for each shock when each position is liquidated and how
    long the bot has to act, plus the ADL risk. Everything it had to assume is printed.
    """
    # lazy: the model and (with --profile) ccxt load only when the command runs
    from perpbot.errors import BadInput
    from perpbot.stress import explain
    from perpbot.stress.inputs import from_document

    if scenario_file is None and profile is None and run is None:
        raise BadInput("risk stress: give a scenario file, --profile or --run")
    if url is not None and profile is None:
        raise BadInput("--url: needs --profile (the key to read the account with)")
    if latency_ms is not None and not (0 <= latency_ms <= 600_000):
        raise BadInput(f"--latency-ms: got {latency_ms:g}, expected 0..600000")
    for s in shocks or []:
        if s == 0 or not (-90 <= s <= 900):
            raise BadInput(f"--shock: got {s:g}, expected a non-zero percentage in [-90, 900]")
    png = _plot_target(plot) if plot is not None else None
    doc, where, notes = _document(scenario_file, profile, url, run, symbols or [])
    if shocks:
        doc["shocks"] = list(shocks)
    if latency_ms is not None:
        doc["latency_ms"] = latency_ms
    scenario = from_document(doc, where=where)
    scenario.assumptions[:0] = notes
    result = explain.run(scenario)
    if png is not None:
        # lazy: start-up speed of `perpbot --help` (the stress model loads when the command runs)
        from perpbot.stress.figure import write_png

        write_png(result, png)
    if json_output:
        out = explain.public(result)
        out["plot"] = str(png) if png is not None else None
        print(json.dumps(out, sort_keys=True), flush=True)
        return
    _print(result, png)


def _plot_target(path: Path) -> Path:
    # lazy: start-up speed of `perpbot --help` (the stress model loads when the command runs)
    from perpbot.cli.runs import _check_target

    return _check_target(path, "--plot")


def _document(
    scenario_file: Path | None, profile: str | None, url: str | None, run: str | None,
    symbols: list[str],
) -> tuple[dict[str, Any], str, list[str]]:  # fmt: skip
    """The scenario document: the file's, with live or run-folder positions and books."""
    # lazy: start-up speed of `perpbot --help` (the stress model loads when the command runs)
    from perpbot.errors import BadInput
    from perpbot.stress.inputs import read_document

    doc: dict[str, Any] = read_document(scenario_file) if scenario_file is not None else {}
    where = str(scenario_file) if scenario_file is not None else "risk stress"
    notes: list[str] = []
    if profile is not None:
        # lazy: start-up speed of `perpbot --help` (the stress model loads when the command runs)
        from perpbot.app.stress_live import live_document
        from perpbot.stress.sources import index_weights_into

        live = live_document(profile, url, symbols)
        notes.extend(live.pop("notes"))
        notes.extend(index_weights_into(doc, live["index_weights"]))
        doc["books"] = {**doc.get("books", {}), **live["books"]}
        crowd = doc.setdefault("crowd", {})
        for sym, body in live["crowd"].items():
            crowd.setdefault(sym, {}).setdefault("open_interest", body["open_interest"])
        if run is None:
            doc["positions"] = live["positions"]
        where = f"{where} (live: {profile})"
    if run is not None:
        # lazy: start-up speed of `perpbot --help` (the stress model loads when the command runs)
        from perpbot.report.runs import resolve_run
        from perpbot.stress.sources import run_positions

        run_dir = resolve_run(run)
        doc["positions"] = run_positions(run_dir)
        where = f"{where} (run {run_dir.name})"
    if not doc.get("books"):
        raise BadInput(f"{where}: no order book: give [books] in a file, or --profile")
    return doc, where, notes


def _print(result: dict[str, Any], png: Path | None) -> None:
    # lazy: start-up speed of `perpbot --help` (the stress model loads when the command runs)
    from rich.table import Table

    from perpbot.report.terminal import console
    from perpbot.stress.explain import TABLE_HEADERS, lines, table_rows

    out = console()
    table = Table(box=None, pad_edge=False, header_style="bold", title="liquidation cascade")
    for col in TABLE_HEADERS:
        table.add_column(col)
    for row in table_rows(result):
        table.add_row(*row)
    out.print(table)
    for line in lines(result):
        out.print(line, soft_wrap=True, markup=False)
    if png is not None:
        out.print(f"plot: {png}", markup=False)
