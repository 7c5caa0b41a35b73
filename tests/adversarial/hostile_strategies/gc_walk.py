"""Walks the heap and ``ctx`` looking for the ccxt object, the guarded client or the engine."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

from perpbot.engine import Context
from tests.adversarial.hostile_strategies.base import Hostile

WANTED = ("ccxt", "perpbot.client", "perpbot.app", "perpbot.kill", "perpbot.engine.context")


def heap() -> list[str]:
    found = set()
    for obj in gc.get_objects():
        module = getattr(type(obj), "__module__", "") or ""
        if module.startswith(WANTED):
            found.add(f"{module}.{type(obj).__name__}")
    return sorted(found)


def reachable_from(root: Any) -> list[str]:
    """Everything reachable from ``ctx`` through attributes, dicts and lists."""
    seen, todo, found = set(), [root], []
    while todo:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        module = getattr(type(obj), "__module__", "") or ""
        if module.startswith(WANTED):
            found.append(type(obj).__name__)
        if isinstance(obj, dict):
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple | set):
            todo.extend(obj)
        for name in getattr(type(obj), "__slots__", ()):
            todo.append(getattr(obj, name, None))
        todo.extend(getattr(obj, "__dict__", {}).values())
    return found


class GcWalk(Hostile):
    def attacks(self, ctx: Context) -> dict[str, Callable[[], Any]]:
        return {
            "gc heap": heap,
            "ctx attributes": lambda: reachable_from(ctx),
            "ctx._runner": lambda: ctx._runner,  # type: ignore[attr-defined]
        }
