"""perpbot's top-level packages form no cycle: an arrow between two packages points one way.

A package is a top-level subpackage of perpbot (``perpbot.kill``) or a top-level module
(``perpbot.config``). An edge counts every run-time import of the modules inside it, at
any depth (function-level imports too: a lazy import still makes one package need the
other); imports under ``if TYPE_CHECKING:`` are not counted (never executed: annotations
only). So no concern reaches up into the composition root (``perpbot.app``) that imports it.
"""

from __future__ import annotations

from tests.architecture.graph import cycles, graph


def package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def package_edges(edges: dict[str, set[str]]) -> dict[str, dict[str, list[str]]]:
    """package -> package it imports -> the module imports that make the edge."""
    out: dict[str, dict[str, list[str]]] = {}
    for module, targets in edges.items():
        for target in targets:
            a, b = package(module), package(target)
            if a != b:
                out.setdefault(a, {}).setdefault(b, []).append(f"{module} -> {target}")
    return out


def test_no_package_cycles() -> None:
    by_package = package_edges(graph())
    found = cycles({a: set(targets) for a, targets in by_package.items()})
    why = {
        f"{a} -> {b}": sorted(by_package[a][b])
        for component in found
        for a in component
        for b in by_package.get(a, {})
        if b in component
    }
    assert found == [], why


def test_the_package_walk_sees_a_cycle() -> None:
    """Not blind: a lazy import from a concern up into app closes a cycle here."""
    edges = {
        "perpbot.app.pipeline": {"perpbot.kill.gate"},
        "perpbot.kill.gate": set(),
        "perpbot.kill.outcome": {"perpbot.app.kill_direct"},  # (function-level counts)
        "perpbot.app.kill_direct": set(),
    }
    by_package = package_edges(edges)
    assert cycles({a: set(t) for a, t in by_package.items()}) == [["app", "kill"]]


# who may import the composition root: the commands that start it, and itself
APP_IMPORTERS = frozenset({"app", "cli"})


def importers_of_app(edges: dict[str, set[str]]) -> list[str]:
    by_package = package_edges(edges)
    return sorted(
        edge
        for a, targets in by_package.items()
        if a not in APP_IMPORTERS
        for edge in targets.get("app", [])
    )


def test_only_the_commands_import_the_composition_root() -> None:
    """No concern (kill, risk, stress, ...) reaches into ``perpbot.app``, even lazily:
    what connects or builds a run lives in app/ and is handed to the concern, or the
    command calls app/ itself (``perpbot risk stress --profile``: app/stress_live.py)."""
    assert importers_of_app(graph()) == []


def test_the_importers_check_sees_a_concern_reaching_into_app() -> None:
    edges = {"perpbot.stress.live": {"perpbot.app.connect"}, "perpbot.app.connect": set()}
    assert importers_of_app(edges) == ["perpbot.stress.live -> perpbot.app.connect"]
