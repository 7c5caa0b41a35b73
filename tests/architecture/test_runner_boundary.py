"""Only the composition root knows the runner: no module outside perpbot/app imports
perpbot.app.lifecycle, not even for a type (``if TYPE_CHECKING:`` counts here). A concern
declares a Protocol naming what it uses of a run (perpbot/engine/hooks.py has the hook
lists' types); perpbot/app/plugins.py hands it the Runner."""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from perpbot.audit.subscriber import AuditRun
from perpbot.engine.context import StrategyBackend
from perpbot.engine.status import StatusRun
from perpbot.keys.plugin import KeyAuditRun
from perpbot.kill.attach import KillRun
from perpbot.ops.plugin import OpsRun
from perpbot.protect.plugin import ProtectRun
from perpbot.ratelimit.plugin import RateRun
from perpbot.risk.plugin import RiskRun
from tests.architecture.graph import PACKAGE, ROOT, all_modules

LIFECYCLE = "perpbot.app.lifecycle"
# what perpbot/app/plugins.py hands the Runner to, each as its own Protocol
CONCERNS = (StatusRun, AuditRun, KeyAuditRun, RiskRun, RateRun, ProtectRun, KillRun, OpsRun)
# read off a running Runner by tests and bench/ only (the streams' state, the drawdown's base)
READ_BY_TESTS = {"feed", "start_equity"}


def lifecycle_imports(path: Path, name: str) -> list[int]:
    """Lines of ``path`` (module ``name``) importing the lifecycle module, at any depth,
    type-only ones included; ``from perpbot.app import lifecycle`` and relative forms too."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    lines: list[int] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                anchor = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        if any(n == LIFECYCLE or n.startswith(LIFECYCLE + ".") for n in names):
            lines.append(node.lineno)
    return sorted(lines)


def test_no_module_outside_app_imports_the_runner() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{line}"
        for name, path in all_modules().items()
        if name != "perpbot.app" and not name.startswith("perpbot.app.")
        for line in lifecycle_imports(path, name)
    ]
    assert found == [], "outside perpbot/app, these import perpbot.app.lifecycle"


def test_the_walk_sees_type_only_relative_and_function_level_imports(tmp_path: Path) -> None:
    """The check itself: a concern reaching the Runner any of these ways is found."""
    probe = tmp_path / "probe.py"
    probe.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from perpbot.app.lifecycle import Runner\n"
        "from ..app import lifecycle\n"
        "def f():\n"
        "    import perpbot.app.lifecycle\n"
        "from ..app import run\n"
        "import perpbot.engine.hooks\n",
        encoding="utf-8",
    )
    assert lifecycle_imports(probe, "perpbot.kill.probe") == [3, 4, 6]
    assert lifecycle_imports(PACKAGE / "app" / "plugins.py", "perpbot.app.plugins") != []


def runner_members() -> set[str]:
    """The Runner's methods, properties and the attributes its ``__init__`` sets."""
    tree = ast.parse((PACKAGE / "app" / "lifecycle.py").read_text(encoding="utf-8"))
    runner = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Runner")
    members: set[str] = set()
    for node in runner.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            members.add(node.name)
            if node.name != "__init__":
                continue
            for sub in ast.walk(node):
                targets = sub.targets if isinstance(sub, ast.Assign) else []
                if isinstance(sub, ast.AnnAssign):
                    targets = [sub.target]
                members.update(
                    t.attr
                    for t in targets
                    if isinstance(t, ast.Attribute)
                    and isinstance(t.value, ast.Name)
                    and t.value.id == "self"
                )
    return members


def protocol_members(protocol: type) -> set[str]:
    get = getattr(typing, "get_protocol_members", None)  # Python >= 3.13
    return set(get(protocol)) if get else set(typing._get_protocol_attrs(protocol))  # type: ignore[attr-defined]


def test_each_concern_names_only_what_the_runner_has_and_less_than_all_of_it() -> None:
    """What perpbot/app/plugins.py hands each ``attach``: the Runner has every member the
    concern's Protocol names (a static type checker says the same), and no concern asks for
    the whole run."""
    runner = runner_members()
    public = {m for m in runner if not m.startswith("_")}
    for protocol in CONCERNS:
        members = protocol_members(protocol)
        assert members, protocol.__name__
        assert members - runner == set(), protocol.__name__
        assert len(members) < len(public) / 2, (protocol.__name__, len(members), len(public))


def app_reads() -> set[str]:
    """What perpbot/app outside lifecycle.py reads off a run (``run.x``, ``runner.x``): the
    stop sequence, `perpbot run`."""
    names: set[str] = set()
    for path in (PACKAGE / "app").glob("*.py"):
        if path.name == "lifecycle.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in {"run", "runner"}
            ):
                names.add(node.attr)
    return names


def test_every_public_member_of_the_runner_is_used_outside_it() -> None:
    """The Runner's public surface is what the concerns' Protocols, the strategy's Context
    (``StrategyBackend``) and the rest of perpbot/app use of it: a member only the runner
    itself uses is private, or lives on the part that owns it (RunCycle, OrderManager)."""
    public = {m for m in runner_members() if not m.startswith("_")}
    used = set().union(*(protocol_members(p) for p in CONCERNS))
    used |= protocol_members(StrategyBackend) | app_reads() | READ_BY_TESTS
    assert sorted(public - used) == []
    # the walk itself: it sees what the stop sequence and `perpbot run` read
    assert {"cycle", "orders", "reporter", "reconciler", "run", "fatal"} <= app_reads()
