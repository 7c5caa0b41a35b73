"""The transport's HTTP hooks are handed over, never found on the ccxt object.

``HttpObservers`` (perpbot.client.wire) is made with the run's ``Setup`` and given to the
exchange (``make_exchange(observers=...)``) and to each concern that hooks in. Only the
transport's own exchange subclass (``observed_class`` in client/transport.py) names its
attribute, on ``self`` / the class it builds; no other module reads or sets it on an
exchange object, by attribute or by ``getattr``/``setattr``/``hasattr`` with its name.
"""

from __future__ import annotations

import ast

from tests.architecture.graph import PACKAGE, ROOT

ATTRIBUTE = "perpbot_observers"
OWNER = "perpbot/client/transport.py"


def _owner_scope(tree: ast.Module) -> set[int]:
    """ids of the nodes inside ``observed_class`` (the class it builds and its methods)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "observed_class":
            inside.update(id(n) for n in ast.walk(node))
    return inside


def offences() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        own = _owner_scope(tree) if rel == OWNER else set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr == ATTRIBUTE:
                base = node.value
                if (
                    id(node) in own
                    and isinstance(base, ast.Name)
                    and base.id in ("self", "Observed")
                ):
                    continue
                found.append(f"{rel}:{node.lineno}: .{ATTRIBUTE}")
            elif isinstance(node, ast.Constant) and node.value == ATTRIBUTE:
                found.append(f"{rel}:{node.lineno}: {ATTRIBUTE!r} by name")
    return found


def test_no_module_finds_the_wire_hooks_on_the_exchange() -> None:
    assert offences() == []


def test_the_check_sees_a_hook_found_on_the_exchange(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The walk is not blind: the very lookups this replaced are caught."""
    import tests.architecture.test_wire_hooks as me

    pkg = tmp_path / "perpbot"
    (pkg / "kill").mkdir(parents=True)
    (pkg / "kill" / "gate.py").write_text(
        'def f(exchange):\n    return getattr(exchange, "perpbot_observers", None)\n'
    )
    (pkg / "ratelimit.py").write_text("def g(ex):\n    ex.perpbot_observers.after.append(1)\n")
    monkeypatch.setattr(me, "PACKAGE", pkg)
    monkeypatch.setattr(me, "ROOT", tmp_path)
    assert sorted(me.offences()) == [
        "perpbot/kill/gate.py:2: 'perpbot_observers' by name",
        "perpbot/ratelimit.py:2: .perpbot_observers",
    ]
