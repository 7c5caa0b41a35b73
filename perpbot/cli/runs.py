"""`perpbot runs` (list past runs) and `perpbot report RUN` (a run's figure and tables)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import typer

from perpbot.cli.runs_prune import prune
from perpbot.errors import BadInput, RuntimeFailure


def register(app: typer.Typer) -> None:
    group = typer.Typer(name="runs", help=runs.__doc__, invoke_without_command=True)
    group.callback(invoke_without_command=True)(_runs_group)
    group.command("prune")(prune)
    app.add_typer(group)
    app.command("report")(report)


def _runs_group(
    ctx: typer.Context,
    json_output: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List past runs: id, strategy, start, duration, PnL and how each ended."""
    if ctx.invoked_subcommand is None:
        runs(json_output)


def runs(
    json_output: bool = typer.Option(False, "--json", help="Print the list as JSON."),
) -> None:
    """List past runs: id, strategy, start, duration, PnL and how each ended."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.report.runs import list_runs

    found = list_runs()
    if json_output:
        print(json.dumps([r.to_dict() for r in found], sort_keys=True))
        return
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.report.terminal import print_runs

    print_runs(found)


def _check_target(path: Path, option: str) -> Path:
    """Where to write: a symlink is written through (its target is replaced atomically, the
    link stays); a device, FIFO or socket is refused (an atomic write would replace it)."""
    if path.is_symlink():
        path = path.resolve()
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise BadInput(f"{option} {path}: {exc.strerror or 'cannot use it'}") from None
    if mode is not None and stat.S_ISDIR(mode):
        raise BadInput(f"{option} {path}: is a directory, expected a file name")
    if mode is not None and not stat.S_ISREG(mode):
        raise BadInput(
            f"{option} {path}: not a regular file (a device, FIFO or socket), expected a file name"
        )
    if path.parent.exists() and not path.parent.is_dir():
        raise BadInput(f"{option} {path}: {path.parent} is not a directory")
    return path


def report(
    run: str = typer.Argument(..., help="A run id, a unique prefix of one, or 'last'."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Where to write the PNG (default: report.png in the run folder)."
    ),
    html: Path | None = typer.Option(
        None, "--html", help="Also write one self-contained HTML file (figure and tables)."
    ),
    json_output: bool = typer.Option(
        False, "--json", help="Print the numbers, notes and figure panels as JSON."
    ),
) -> None:
    """Draw a run: price and fills, position, equity and drawdown, rate budget, events."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.report.build import build_report
    from perpbot.report.runs import resolve_run

    run_dir = resolve_run(run)
    png_path = _check_target(out if out is not None else run_dir / "report.png", "--out")
    html_path = _check_target(html, "--html") if html is not None else None
    rep = build_report(run_dir)
    try:
        png = rep.write_png(png_path)
        if html_path is not None:
            rep.write_html(html_path, png)
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot write the report: {exc.strerror or type(exc).__name__}: {exc.filename}"
        ) from None
    files = [str(png_path)] + ([str(html_path)] if html_path else [])
    if json_output:
        doc = rep.to_json()
        doc["png"], doc["html"] = str(png_path), str(html_path) if html_path else None
        print(json.dumps(doc, sort_keys=True, default=str))
        return
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.report.terminal import print_report

    print_report(rep.heading, rep.sections, rep.run.notes, files)
