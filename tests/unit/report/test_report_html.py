"""The HTML report: self-contained (figure embedded, no external references), escaped."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from perpbot.report.build import build_report
from tests.unit.report.report_html_check import embedded_images, external_references
from tests.unit.report.report_synth import T0, event

PREFIX = "data:image/png;base64,"


def test_html_is_self_contained_and_escaped(write_run: Callable[..., Path]) -> None:
    hostile = "<script>alert('x')</script> & <img src=http://evil.example/x.png>"
    events = [event(T0 + 3, "alert", "MONITOR_X", hostile), event(T0 + 4, "info", "IGNORED")]
    d = write_run(events=events)
    rep = build_report(d)
    png = rep.write_png(d / "r.png")
    rep.write_html(d / "r.html", png)
    page = (d / "r.html").read_text()
    assert page.startswith("<!doctype html>")
    assert external_references(page) == []
    imgs = embedded_images(page)
    assert len(imgs) == 1 and imgs[0].startswith(PREFIX)
    assert base64.b64decode(imgs[0][len(PREFIX) :]) == png
    # the hostile sentence is shown as text, not markup
    assert "&lt;script&gt;" in page and "MONITOR_X" in page and "IGNORED" not in page
    for title in ("PnL (USDT)", "Fills", "Orders", "Equity", "Events"):
        assert f"<h2>{title}</h2>" in page


def test_the_checker_catches_external_references() -> None:
    bad = (
        "<html><head><link rel=stylesheet href='https://cdn.example/x.css'>"
        "<style>@import 'x.css';</style></head><body>"
        "<script src='//cdn.example/x.js'></script><img src='http://x/y.png'>"
        "<a href='https://example.com'>x</a><div style=\"background:url(http://x)\"></div>"
        "</body></html>"
    )
    found = external_references(bad)
    assert len(found) == 8, found
    assert external_references("<img src='data:image/png;base64,AAAA'>") == []
