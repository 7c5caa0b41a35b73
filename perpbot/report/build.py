"""Assemble a run's report: load, compute, draw, and write the PNG / HTML atomically."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from perpbot.fsutil import atomic_write_bytes, atomic_write_text
from perpbot.report.data import RunData, load_run
from perpbot.report.figure import build_figure, describe, png_bytes
from perpbot.report.html import render_html
from perpbot.report.runs import RunInfo, run_info
from perpbot.report.series import RunSeries, build_series
from perpbot.report.tables import Section, compute, sections

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass
class Report:
    run: RunData
    info: RunInfo
    series: RunSeries
    numbers: dict[str, Any]
    sections: list[Section]
    figure: Figure

    @property
    def heading(self) -> str:
        return heading(self.info)

    def write_png(self, path: Path) -> bytes:
        data = png_bytes(self.figure)
        atomic_write_bytes(path, data)
        return data

    def write_html(self, path: Path, png: bytes) -> None:
        page = render_html(
            self.info.run_id, self.heading, png, self.sections, self.run.notes, self.run.events
        )
        atomic_write_text(path, page)

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.info.to_dict(),
            "numbers": self.numbers,
            "notes": list(self.run.notes),
            "torn": list(self.run.torn),
            "figure": describe(self.figure),
        }


def heading(info: RunInfo) -> str:
    return f"run {info.run_id} ({info.strategy or '?'}): {info.ended}"


def build_report(run_dir: Path) -> Report:
    run = load_run(run_dir)
    info = run_info(run)
    series = build_series(run)
    numbers = compute(run, series)
    if info.status == "running":
        run.notes.append("the run is still going: this report shows what was written so far")
    figure = build_figure(run, series, heading(info))
    return Report(run, info, series, numbers, sections(info, numbers), figure)
