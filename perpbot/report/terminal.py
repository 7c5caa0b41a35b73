"""Rich tables for the terminal: the run listing and a report's summary tables.

rich is imported inside the functions: the CLI modules that call them must stay light.
On a pipe rich prints plain text, wide enough that run ids are never cut.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from perpbot.report.runs import RunInfo
from perpbot.report.tables import Section, duration, money, when

if TYPE_CHECKING:
    from rich.console import Console


def console() -> Console:
    return Console(width=None if sys.stdout.isatty() else 160, highlight=False)


STATUS_STYLE = {
    "running": "cyan",
    "crashed": "bold red",
    "kill": "bold red",
    "error": "red",
    "interrupted": "yellow",
    "terminated": "yellow",
}


def print_runs(runs: list[RunInfo]) -> None:
    out = console()
    if not runs:
        out.print("no runs yet (start one with `perpbot run STRATEGY.toml`)")
        return
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("run", "strategy", "started", "duration", "PnL (USDT)", "ended"):
        table.add_column(col, no_wrap=col != "ended", justify="right" if "PnL" in col else "left")
    for r in runs:
        pnl = money(r.pnl) + ("" if r.pnl_final or r.pnl is None else " ~")
        table.add_row(
            r.run_id,
            r.strategy or "-",
            when(r.started_at).replace(" UTC", ""),
            duration(r.duration_s),
            pnl,
            r.ended,
            style=STATUS_STYLE.get(r.status),
        )
    out.print(table)
    if any(not r.pnl_final and r.pnl is not None for r in runs):
        out.print("~ estimated from the journals: the run has no summary (running or crashed)")


def print_report(heading: str, sections: list[Section], notes: list[str], files: list[str]) -> None:
    out = console()
    out.print(f"[bold]{_esc(heading)}[/bold]")
    for section in sections:
        table = Table(title=section.title, title_justify="left", show_header=False, box=None)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for k, v in section.rows:
            table.add_row(_esc(k), _esc(v))
        out.print(table)
    for note in notes:
        out.print(f"[yellow]note:[/yellow] {_esc(note)}")
    for f in files:
        out.print(f"wrote {_esc(f)}")


def _esc(text: str) -> str:
    return escape(text)
