"""The module graph: every module imports alone, client/ is a leaf, no import cycles."""

from __future__ import annotations

import subprocess
import sys

from tests.architecture.graph import ROOT, all_modules, cycles, graph

GATES = ("kill", "keys", "risk", "engine", "app", "cli")


FRESH_IMPORTS = """
import importlib, sys, traceback
failed = []
for name in sys.argv[1:]:
    for loaded in [m for m in sys.modules if m == "perpbot" or m.startswith("perpbot.")]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except Exception:
        failed.append(name + ": " + traceback.format_exc().strip().splitlines()[-1])
print("\\n".join(failed))
sys.exit(1 if failed else 0)
"""


def test_every_module_imports_first_in_a_fresh_interpreter() -> None:
    """Each module is imported with no other perpbot module loaded before it, so an import
    that only works in some order (a hidden cycle) fails here."""
    names = sorted(n for n in all_modules() if not n.endswith("__main__"))  # runs the CLI
    result = subprocess.run(
        [sys.executable, "-c", FRESH_IMPORTS, *names],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_client_imports_no_gate_and_no_composition() -> None:
    edges = graph()
    leaks = []
    for module, targets in edges.items():
        if not module.startswith("perpbot.client.") and module != "perpbot.client":
            continue
        for target in targets:
            if target.split(".")[1] in GATES:
                leaks.append(f"{module} -> {target}")
    assert leaks == []


def test_client_imports_nothing_of_the_simulator() -> None:
    """A loopback URL's ccxt settings live in client/loopback.py, not in perpbot.sim."""
    edges = graph()
    leaks = [
        f"{module} -> {target}"
        for module, targets in edges.items()
        if module == "perpbot.client" or module.startswith("perpbot.client.")
        for target in targets
        if target == "perpbot.sim" or target.startswith("perpbot.sim.")
    ]
    assert leaks == []


LOOPBACK_CLIENT = """
import sys
from perpbot.client.transport import make_exchange
ex = make_exchange("sim", api_key="k", secret="s", base_url="http://127.0.0.1:9")
assert ex.urls["api"]["fapiPrivate"] == "http://127.0.0.1:9/fapi/v1", ex.urls["api"]
print(sorted(m for m in sys.modules if m == "perpbot.sim" or m.startswith("perpbot.sim.")))
"""


def test_a_loopback_client_loads_no_simulator() -> None:
    """Built for a loopback URL (the simulator's), the client still loads no perpbot.sim."""
    result = subprocess.run(
        [sys.executable, "-c", LOOPBACK_CLIENT],
        capture_output=True,
        text=True,
        cwd=str(ROOT),
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_the_graph_sees_function_level_imports() -> None:
    """The walk counts imports inside functions (a lazy import can still close a cycle)."""
    edges = graph()
    # cli/run.py imports the composition root only inside the command function (lazy)
    assert "perpbot.app.run" in edges["perpbot.cli.run"]


def test_no_import_cycles() -> None:
    assert cycles(graph()) == []
