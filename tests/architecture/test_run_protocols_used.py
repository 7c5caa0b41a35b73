"""A concern's Protocol names only what that concern uses of a run.

Each ``...Run`` Protocol (and the strategy Context's ``StrategyBackend``) says what its module
reads of the Runner; a member it names but never reads widens the concern's view of the run
for nothing (and keeps a Runner member public for nothing: test_runner_boundary.py). Every
member a Protocol declares itself is read (``x.member``) somewhere in its module.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.architecture.graph import PACKAGE, ROOT


def _is_run_protocol(cls: ast.ClassDef) -> bool:
    protocol = any(isinstance(b, ast.Name) and b.id == "Protocol" for b in cls.bases)
    return protocol and (cls.name.endswith("Run") or cls.name == "StrategyBackend")


def unread_members(source: str) -> dict[str, list[str]]:
    """Run Protocols of ``source`` -> the members they declare that the module never reads."""
    tree = ast.parse(source)
    out: dict[str, list[str]] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and _is_run_protocol(n)):
        own: set[str] = set()
        for node in cls.body:
            if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                own.add(node.target.id)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                own.add(node.name)
        inside = {id(n) for n in ast.walk(cls)}
        read = {
            n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and id(n) not in inside
        }
        if own - read:
            out[cls.name] = sorted(own - read)
    return out


def test_every_member_a_run_protocol_declares_is_read_by_its_module() -> None:
    found = {
        f"{path.relative_to(ROOT)}:{name}": members
        for path in sorted(PACKAGE.rglob("*.py"))
        for name, members in unread_members(path.read_text(encoding="utf-8")).items()
    }
    assert found == {}


def test_the_walk_sees_a_member_nobody_reads(tmp_path: Path) -> None:
    source = (
        "from typing import Protocol\n"
        "class ProbeRun(Protocol):\n"
        "    bus: object\n"
        "    ledger: object\n"
        "    def request_stop(self, reason: str) -> None: ...\n"
        "    async def reconcile(self) -> None: ...\n"
        "class Store(Protocol):\n"  # an interface, not what a concern reads of a run
        "    def transact(self) -> None: ...\n"
        "def attach(run: ProbeRun) -> None:\n"
        "    run.bus.publish(run.ledger)\n"
        "    run.request_stop('x')\n"
    )
    assert unread_members(source) == {"ProbeRun": ["reconcile"]}
