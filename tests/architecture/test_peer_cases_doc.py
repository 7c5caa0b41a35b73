"""docs/peer-cases.md maps each failure peers' users reported to the tests that show perpbot
does not have it: every test it names must exist (a renamed or deleted test would leave the
page claiming a cover that is gone)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.architecture.graph import ROOT

DOC = (ROOT / "docs" / "peer-cases.md").read_text(encoding="utf-8")
NODE = re.compile(r"\b(tests/[\w/]+\.py)::(\w+)")


def defined_names(path: Path) -> set[str]:
    """The test functions and classes a test module defines at its top level (a class may
    be assigned: ``TestMachine = Machine.TestCase``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def test_every_test_the_page_names_exists() -> None:
    named = NODE.findall(DOC)
    assert len(named) >= 30, "the page names fewer tests than it should: was the pattern changed?"
    missing = [
        f"{file}::{name}"
        for file, name in named
        if not (ROOT / file).is_file() or name not in defined_names(ROOT / file)
    ]
    assert missing == []


PEERS = ("freqtrade", "hummingbot", "nautilus", "passivbot", "jesse", "ccxt", "Qubx", "Binance")


def test_every_case_names_its_source() -> None:
    """A case is a bullet whose title is in bold; each names the peer (and issue) it is."""
    cases = re.findall(r"^- \*\*(.+?)\*\*(.*?)(?=^- \*\*|^## |\Z)", DOC, re.M | re.S)
    assert len(cases) >= 20
    unsourced = [title for title, rest in cases if not any(p in title + rest for p in PEERS)]
    assert unsourced == []
