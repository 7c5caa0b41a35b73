"""What a ccxt exchange subclass is given is handed over, never planted on or found on the
ccxt object (issue 13).

``HttpObservers`` (perpbot.client.wire) is made with the run's ``Setup`` and given to the
exchange (``make_exchange(observers=...)``) and to each concern that hooks in; the streams'
``StreamWire`` (perpbot.streams.wire) is made by the composition root and given to the
ccxt.pro exchange (``make_pro_exchange``) and to the ``StreamFeed``. Each is held by the
exchange subclass that perpbot builds (``observed_class`` in client/transport.py,
``piped_class`` in streams/exchange.py) as an attribute of its own class, named there on
``self`` / the class it builds only.

``perpbot_*`` attributes are the ones perpbot gives a ccxt subclass. No module reads or
sets one on any other object (``ex.perpbot_x``, ``type(ex).perpbot_x``), and none does by
name (``getattr``/``setattr``/``hasattr``/``delattr`` with a ``"perpbot_..."`` string), the
owner included; the owned names never appear as strings at all. A function of an imported
module (``orders.perpbot_strategy_tag``) is not an object's attribute.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.architecture.graph import PACKAGE, ROOT

PREFIX = "perpbot_"
# attribute -> (the module, the function building the class that holds it, that class)
OWNERS = {
    "perpbot_observers": ("perpbot/client/transport.py", "observed_class", "Observed"),
    "perpbot_wire": ("perpbot/streams/exchange.py", "piped_class", "Piped"),
}
BY_NAME = frozenset({"getattr", "setattr", "hasattr", "delattr"})


def _scope(tree: ast.Module, function: str) -> set[int]:
    """ids of the nodes inside ``function`` (the class it builds and its methods)."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == function:
            inside.update(id(n) for n in ast.walk(node))
    return inside


def _imported(tree: ast.Module) -> set[str]:
    """Names the module binds by ``import`` (modules and what they export)."""
    return {
        (alias.asname or alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }


def _owned_here(node: ast.Attribute, rel: str, scopes: dict[str, set[int]]) -> bool:
    """``self.<attr>`` / ``<Class>.<attr>`` inside the function that builds its class."""
    owner = OWNERS.get(node.attr)
    if owner is None or owner[0] != rel or id(node) not in scopes[node.attr]:
        return False
    return isinstance(node.value, ast.Name) and node.value.id in ("self", owner[2])


def offences(package: Path = PACKAGE, root: Path = ROOT) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scopes = {
            attr: _scope(tree, function) if module == rel else set()
            for attr, (module, function, _) in OWNERS.items()
        }
        modules = _imported(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr.startswith(PREFIX):
                if _owned_here(node, rel, scopes):
                    continue
                if isinstance(node.value, ast.Name) and node.value.id in modules:
                    continue  # a module's function, not an object's attribute
                found.append(f"{rel}:{node.lineno}: .{node.attr}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id in BY_NAME
                and len(node.args) >= 2
                and isinstance(node.args[1], ast.Constant)
                and isinstance(node.args[1].value, str)
                and node.args[1].value.startswith(PREFIX)
            ):
                found.append(f"{rel}:{node.lineno}: {node.func.id} {node.args[1].value!r}")
            elif isinstance(node, ast.Constant) and node.value in OWNERS:
                found.append(f"{rel}:{node.lineno}: {node.value!r} by name")
    return sorted(set(found))


def test_no_module_finds_the_wire_hooks_on_the_exchange() -> None:
    assert offences() == []


def offences_in(root: Path, files: dict[str, str]) -> list[str]:
    """``offences`` of a package made of ``files`` (path under ``perpbot/`` -> source)."""
    for name, source in files.items():
        path = root / "perpbot" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return offences(root / "perpbot", root)


def test_the_check_sees_a_hook_found_on_the_exchange(tmp_path: Path) -> None:
    """The walk is not blind: the very lookups this replaced are caught."""
    found = offences_in(
        tmp_path,
        {
            "kill/gate.py": (
                'def f(exchange):\n    return getattr(exchange, "perpbot_observers", None)\n'
            ),
            "ratelimit.py": "def g(ex):\n    ex.perpbot_observers.after.append(1)\n",
        },
    )
    assert found == [
        "perpbot/kill/gate.py:2: 'perpbot_observers' by name",
        "perpbot/kill/gate.py:2: getattr 'perpbot_observers'",
        "perpbot/ratelimit.py:2: .perpbot_observers",
    ]


def test_the_check_sees_what_the_streams_planted_and_read(tmp_path: Path) -> None:
    """What the streams did before their ``StreamWire``: attributes set on the ccxt.pro
    exchange by its maker, and a count read off it by the feed with ``getattr``."""
    exchange = (
        "def piped_class(base, wire):\n"
        "    class Piped(base):\n"
        "        def fetch(self):\n"
        "            return self.perpbot_wire.client\n"
        "    Piped.perpbot_wire = wire\n"
        "    return Piped\n"
        "def make(cls, client, wire):\n"
        "    ex = piped_class(cls, wire)()\n"
        "    ex.perpbot_client = client\n"
        '    setattr(ex, "perpbot_messages_per_s", 10)\n'
        "    type(ex).perpbot_wire = wire\n"
        "    return ex\n"
    )
    feed = (
        "from perpbot.client import orders\n"
        "class Feed:\n"
        "    def read(self):\n"
        '        n = getattr(self.ex, "perpbot_reordered_positions", 0)\n'
        '        return n, orders.perpbot_strategy_tag("x"), "perpbot_bot_up"\n'
    )
    found = offences_in(tmp_path, {"streams/exchange.py": exchange, "streams/feed.py": feed})
    assert found == [
        "perpbot/streams/exchange.py:10: setattr 'perpbot_messages_per_s'",
        "perpbot/streams/exchange.py:11: .perpbot_wire",
        "perpbot/streams/exchange.py:9: .perpbot_client",
        "perpbot/streams/feed.py:4: getattr 'perpbot_reordered_positions'",
    ]
