"""Every import inside a function says why it is there.

The package has no import cycle (test_imports.py), so no function-level import is needed to
dodge one. What stays inside a function is lazy on purpose: the start-up speed of
`perpbot --help` and `perpbot kill`, an optional extra (redis, matplotlib), a POSIX-only
module. Each carries a ``# lazy: <why>`` comment on its line or in the comment lines just
above it; the imports right below a commented one (one block, blank lines between import
sections allowed) share its comment.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.architecture.graph import PACKAGE, ROOT

MARK = "# lazy:"


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def function_level_imports(path: Path) -> list[ast.Import | ast.ImportFrom]:
    """Imports inside a def body (not under ``if TYPE_CHECKING:``, which never runs)."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if in_function and isinstance(node, ast.Import | ast.ImportFrom):
            found.append(node)
        inner = in_function or isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def explained(lines: list[str], node: ast.Import | ast.ImportFrom, imports: set[int]) -> bool:
    """The import's line, the comment lines above it, or (for an import right below another
    function-level import) that import's explanation says ``# lazy:``."""
    if MARK in lines[node.lineno - 1]:
        return True
    above = node.lineno - 1  # 1-based number of the line above
    while above >= 1 and lines[above - 1].strip().startswith("#"):
        if MARK in lines[above - 1]:
            return True
        above -= 1
    return False


def unexplained() -> list[str]:
    out: list[str] = []
    for path in sorted(PACKAGE.rglob("*.py")):
        nodes = function_level_imports(path)
        if not nodes:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        ok: set[int] = set()  # last line numbers of explained imports
        for node in sorted(nodes, key=lambda n: n.lineno):
            above = node.lineno - 1  # directly below an explained import (blank lines
            while above >= 1 and not lines[above - 1].strip():  # between sections allowed)
                above -= 1
            block_above = above in ok
            if block_above or explained(lines, node, ok):
                ok.add(node.end_lineno or node.lineno)
            else:
                where = path.relative_to(ROOT)
                out.append(f"{where}:{node.lineno}: {lines[node.lineno - 1].strip()}")
    return out


def test_every_function_level_import_says_why_it_is_lazy() -> None:
    missing = unexplained()
    assert missing == [], (
        "function-level imports without a '# lazy: <why>' comment (move them to the top of "
        "the module unless they must wait):\n" + "\n".join(missing)
    )


def test_the_check_sees_an_unexplained_import(tmp_path: Path) -> None:
    """The walk finds imports at any depth in a function and accepts only a stated reason."""
    src = tmp_path / "m.py"
    src.write_text(
        "def f():\n"
        "    if True:\n"
        "        import json\n"
        "    # lazy: start-up speed\n"
        "    import csv\n"
        "    import zlib\n"
        "\n"
        "    import gzip\n"
    )
    nodes = function_level_imports(src)
    lines = src.read_text().splitlines()
    assert [n.lineno for n in nodes] == [3, 5, 6, 8]
    assert [explained(lines, n, set()) for n in nodes] == [False, True, False, False]
