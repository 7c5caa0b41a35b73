"""docs/architecture.md says what the code does: the files it names, the stop sequence's
shares of its bound, the order the concerns attach in (app/plugins.py), the pipeline order
(app/pipeline.py, and README.md's drawing)."""

from __future__ import annotations

import ast
import re

from perpbot.app import stop
from perpbot.config import StrategySection
from tests.architecture.graph import PACKAGE, ROOT

DOC = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _pct(share: float) -> int:
    return round(share * 100)


def test_every_file_the_doc_names_exists() -> None:
    named = set(re.findall(r"\b((?:[a-z_]+/)+[a-z_]+\.py)\b", DOC))
    assert named, "the walk found no file names"
    missing = sorted(p for p in named if not (PACKAGE / p).exists() and not (ROOT / p).exists())
    assert missing == []


def test_the_stop_sequence_shares_are_the_codes() -> None:
    cancel = re.search(
        r"empty or (\d+)% of the bound has passed \(the rest is kept: (\d+)% to confirm, "
        r"(\d+)% to release\)",
        " ".join(DOC.split()),
    )
    assert cancel is not None
    assert [int(g) for g in cancel.groups()] == [
        _pct(1 - stop.CONFIRM_SHARE - stop.RELEASE_SHARE),
        _pct(stop.CONFIRM_SHARE),
        _pct(stop.RELEASE_SHARE),
    ]
    strategy = re.search(
        r"calls in flight land \((\d+) s\), the callback the stop met \(a tick\) ends "
        r"\((\d+) s\), `on_stop` runs \((\d+) s\), all within (\d+)% of the bound",
        " ".join(DOC.split()),
    )
    assert strategy is not None
    assert [int(g) for g in strategy.groups()] == [
        stop.INFLIGHT_WAIT_S,
        stop.CALLBACK_LAND_S,
        stop.ON_STOP_WAIT_S,
        _pct(stop.STRATEGY_SHARE),
    ]
    default = StrategySection.model_fields["stop_timeout_s"].default
    assert f"`[strategy] stop_timeout_s` (default {default:g} s)" in " ".join(DOC.split())


def attach_order() -> list[str]:
    """The concerns in the order app/plugins.py ``attach`` wires them (by the package, or
    the module in engine/, that the called function comes from)."""
    tree = ast.parse((PACKAGE / "app" / "plugins.py").read_text(encoding="utf-8"))
    source: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("perpbot."):
            parts = (node.module or "").split(".")
            if len(parts) < 3 or parts[1] == "app":
                continue
            concern = parts[2] if parts[1] == "engine" else parts[1]
            for alias in node.names:
                source[alias.asname or alias.name] = concern
    attach = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "attach")
    calls = [
        (node.lineno, source[node.func.id])
        for node in ast.walk(attach)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in source
    ]
    return [concern for _, concern in sorted(calls)]


def test_plugins_docstring_lists_the_concerns_in_attach_order() -> None:
    doc = ast.get_docstring(ast.parse((PACKAGE / "app" / "plugins.py").read_text()))
    assert doc is not None
    listed = re.findall(r"^    ([a-z]+) ", doc, re.M)
    assert listed == attach_order()


# the phrase the doc uses for each concern's on_connected / before_stop hook
ON_CONNECTED = {
    "status": 'status "starting"',
    "audit": "the signed log's wire look",
    "keys": "key audit warning",
    "risk": "risk tables",
    "ratelimit": "rate section",
    "kill": "kill: the start-up sweep",
    "ops": "ops: the metrics endpoint",
}
BEFORE_STOP = {
    "status": 'status "stopping"',
    "risk": "index connections closed",
    "ratelimit": "rate-limit waits allowed again",
    "kill": 'the dead-man marked "refreshed no more"',
    "ops": "the run's end alerted (ops)",
}


def _hooked(hook: str) -> set[str]:
    """Concerns whose code appends to ``runner.<hook>``."""
    packages = {"status": PACKAGE / "engine" / "status.py", "audit": PACKAGE / "audit"}
    found = set()
    for concern in ("status", "audit", "keys", "risk", "ratelimit", "protect", "kill", "ops"):
        where = packages.get(concern, PACKAGE / concern)
        files = [where] if where.is_file() else sorted(where.rglob("*.py"))
        if any(f"{hook}.append(" in f.read_text(encoding="utf-8") for f in files):
            found.add(concern)
    return found


def _doc_order(phrases: dict[str, str], paragraph: str) -> list[str]:
    text = " ".join(paragraph.split())
    at = {c: text.find(p) for c, p in phrases.items()}
    assert all(i >= 0 for i in at.values()), {c: p for c, p in phrases.items() if at[c] < 0}
    return sorted(at, key=at.__getitem__)


def test_the_doc_names_each_hook_in_attach_order() -> None:
    order = attach_order()
    start = DOC[
        DOC.index("on_connected hooks, in app/plugins.py order") : DOC.index("Runner._trade")
    ]
    assert set(ON_CONNECTED) == _hooked("on_connected")
    assert _doc_order(ON_CONNECTED, start) == [c for c in order if c in ON_CONNECTED]
    before = DOC[DOC.index("2. before-stop hooks") : DOC.index("3. cancel THIS run")]
    assert set(BEFORE_STOP) == _hooked("before_stop")
    assert _doc_order(BEFORE_STOP, before) == [c for c in order if c in BEFORE_STOP]


def test_the_pipeline_order_is_the_doc_and_the_readme() -> None:
    source = (PACKAGE / "app" / "pipeline.py").read_text(encoding="utf-8")
    body = source[source.index("def build_layers") : source.index("def build_client")]
    factories = re.findall(r"^\s+(\w+)\(setup", body, re.M)
    assert factories == [
        "kill_gate",
        "scope_gate",
        "build_risk_gate",
        "build_rate_limiter",
        "build_retrier",
    ]
    names = ["KillGate", "ScopeGate", "RiskGate", "RateLimiter", "Retrier", "Transport"]
    path = DOC[DOC.index("## The request path") : DOC.index("Other senders")]
    assert sorted(names, key=path.index) == names
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    drawn = "kill switch -> permission scope -> pre-trade risk -> rate limiter -> retry/backoff"
    assert f"{drawn} -> ccxt -> exchange" in readme
