"""Exit codes are defined once (perpbot/errors.py, EXIT_*) and named everywhere else.

A bare number where a process ends or an exit code is judged (``sys.exit(4)``,
``typer.Exit(1)``, ``exit_code in (2, 3, 4)``, ``exit_code = 2``) would drift from the README's
table the day one of them changes; the walk below finds any such number in perpbot/.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.architecture.graph import PACKAGE, ROOT

DEFINED_IN = PACKAGE / "errors.py"
EXITS = {"exit", "_exit", "Exit", "SystemExit"}  # sys.exit, os._exit, typer.Exit, SystemExit


def _name(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


def _numbers(node: ast.AST) -> bool:
    """An int literal, or a tuple/list/set of them."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int) and not isinstance(node.value, bool)
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return any(_numbers(e) for e in node.elts)
    return False


def _is_exit_code(node: ast.AST) -> bool:
    return _name(node) in {"exit_code", "returncode"}


def literal_exit_codes(source: str) -> list[int]:
    """Lines where a number stands for an exit code."""
    found: list[int] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _name(node.func) in EXITS:
            args = [*node.args, *(k.value for k in node.keywords if k.arg == "code")]
            if any(_numbers(a) for a in args):
                found.append(node.lineno)
        elif isinstance(node, ast.Call) and _name(node.func) == "getattr" and node.args[2:]:
            attr, default = node.args[1], node.args[2]
            named = isinstance(attr, ast.Constant) and attr.value in {"exit_code", "returncode"}
            if named and _numbers(default):
                found.append(node.lineno)
        elif isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
            if any(_is_exit_code(s) for s in sides) and any(_numbers(s) for s in sides):
                found.append(node.lineno)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_is_exit_code(t) for t in targets) and node.value and _numbers(node.value):
                found.append(node.lineno)
        elif isinstance(node, ast.keyword) and node.arg == "exit_code" and _numbers(node.value):
            found.append(node.value.lineno)
    return sorted(found)


def test_no_module_spells_an_exit_code_as_a_number() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted(PACKAGE.rglob("*.py"))
        if path != DEFINED_IN
        for line in literal_exit_codes(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "use the EXIT_* names of perpbot/errors.py"


def test_the_walk_sees_every_way_of_spelling_one(tmp_path: Path) -> None:
    source = (
        "import os, sys, typer\n"
        "sys.exit(4)\n"
        "raise typer.Exit(code=1)\n"
        "if run.exit_code in (2, 3, 4): pass\n"
        "self.exit_code = 2\n"
        "run.request_stop('x', exit_code=4)\n"
        "os._exit(1)\n"
        "sys.exit(main())\n"
        "raise typer.Exit()\n"
        "if run.exit_code == EXIT_KILL: pass\n"
        "delay = 4\n"
        "code = getattr(failure, 'exit_code', 1)\n"
        "code = getattr(failure, 'exit_code', EXIT_FAIL)\n"
    )
    assert literal_exit_codes(source) == [2, 3, 4, 5, 6, 7, 12]
