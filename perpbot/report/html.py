"""The report as one self-contained HTML file.

The figure is embedded as a base64 ``data:`` URI and the styles are inline, so the file can
be mailed, attached to a ticket or opened offline: it references nothing outside itself (no
scripts, no stylesheets, no fonts, no remote images). Every value is HTML-escaped: event
sentences and strategy names are data, never markup.
"""

from __future__ import annotations

import base64
from html import escape
from typing import Any

from perpbot.report.tables import Section, when

EVENT_ACTIONS = ("trip", "alert", "tighten", "recover", "ban", "reject", "deny", "act")
MAX_EVENTS = 500

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1240px; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: 0.4em 0 1em; }
td, th { padding: 0.25em 0.8em; border-bottom: 1px solid #e4e4e4; text-align: left;
         vertical-align: top; }
th { background: #f4f4f4; }
.sections { display: flex; flex-wrap: wrap; gap: 1.5em; }
.notes { background: #fff6e0; border-left: 4px solid #e6a700; padding: 0.5em 1em; }
img { max-width: 100%; border: 1px solid #ddd; }
.num { font-variant-numeric: tabular-nums; }
"""


def _indent(label: str) -> str:
    """A row label with its leading spaces kept (sub-rows such as "  realised")."""
    stripped = label.lstrip(" ")
    return "&nbsp;" * (len(label) - len(stripped)) + escape(stripped)


def _table(section: Section) -> str:
    rows = "".join(
        f"<tr><th>{_indent(k)}</th><td class='num'>{escape(v)}</td></tr>" for k, v in section.rows
    )
    return f"<div><h2>{escape(section.title)}</h2><table>{rows}</table></div>"


def _events(events: list[dict[str, Any]]) -> str:
    shown = [e for e in events if e.get("action") in EVENT_ACTIONS]
    if not shown:
        return "<p>No kill, alert, rate or rejection events were recorded.</p>"
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{escape(str(v))}</td>"
            for v in (
                when(e.get("ts") if isinstance(e.get("ts"), int | float) else None),
                e.get("layer", ""),
                e.get("action", ""),
                e.get("code", ""),
                e.get("sentence", ""),
            )
        )
        + "</tr>"
        for e in shown[:MAX_EVENTS]
    )
    more = len(shown) - MAX_EVENTS
    tail = f"<p>... and {more} more (see events.jsonl).</p>" if more > 0 else ""
    head = "<tr><th>time</th><th>layer</th><th>action</th><th>code</th><th>what happened</th></tr>"
    return f"<table>{head}{rows}</table>{tail}"


def render_html(
    run_id: str,
    heading: str,
    png: bytes,
    sections: list[Section],
    notes: list[str],
    events: list[dict[str, Any]],
) -> str:
    data_uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    notes_html = (
        "<div class='notes'><strong>Read with care:</strong><ul>"
        + "".join(f"<li>{escape(n)}</li>" for n in notes)
        + "</ul></div>"
        if notes
        else ""
    )
    return (
        "<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>perpbot report {escape(run_id)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{escape(heading)}</h1>{notes_html}"
        f"<img src='{data_uri}' alt='price, position, equity, drawdown and rate budget "
        f"of run {escape(run_id)}'>"
        f"<div class='sections'>{''.join(_table(s) for s in sections)}</div>"
        f"<h2>Events</h2>{_events(events)}"
        "</body></html>\n"
    )
