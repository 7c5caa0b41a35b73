"""The rate limiter is a concern of its own: it imports none of the other concerns.

Every import statement of every module of ``perpbot.ratelimit`` (``TYPE_CHECKING`` ones and
function-level ones included) is read from the source; only ``plugin.py``, which attaches the
limiter to a run, may name the engine. A fresh interpreter then imports each module alone.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "perpbot" / "ratelimit"
FORBIDDEN = ("kill", "keys", "risk", "engine", "app", "cli")
MODULES = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_no_other_concern_is_imported(path: Path) -> None:
    allowed = ("engine",) if path.name == "plugin.py" else ()
    bad = {
        name
        for name in imported(path)
        for concern in FORBIDDEN
        if concern not in allowed
        and (name == f"perpbot.{concern}" or name.startswith(f"perpbot.{concern}."))
    }
    assert bad == set(), f"{path.name} imports {sorted(bad)}"


def test_nothing_imports_the_old_package_path() -> None:
    assert not (PACKAGE.parent / "client" / "ratelimit").exists()


def test_every_module_imports_alone_in_a_fresh_interpreter() -> None:
    for module in ["perpbot.ratelimit", *(f"perpbot.ratelimit.{m}" for m in MODULES)]:
        result = subprocess.run(
            [sys.executable, "-c", f"import {module}"], capture_output=True, text=True
        )
        assert result.returncode == 0, f"{module}: {result.stderr.strip()[-500:]}"
