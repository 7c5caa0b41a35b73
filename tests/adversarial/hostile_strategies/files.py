"""Reads files the strategy has no business reading: the state dir (its signed log and
keys; a hostile author knows the layout, the test passes the path), a file planted where a
file keyring would keep a secret, the system's account files, the engine user's home."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perpbot.engine import Context
from tests.adversarial.hostile_strategies.base import Hostile


def read_tree(root: str) -> list[str]:
    got = []
    for folder, _dirs, files in os.walk(root, onerror=lambda exc: (_ for _ in ()).throw(exc)):
        for name in files:
            got.append(f"{name}: {(Path(folder) / name).read_bytes()[:16]!r}")
    return got


def read_file(path: str) -> bytes:
    return Path(path).read_bytes()


class Files(Hostile):
    def attacks(self, ctx: Context) -> dict[str, Callable[[], Any]]:
        params: Any = self.params
        return {
            "state dir": lambda: read_tree(params["state_dir"]),
            "file keyring": lambda: read_file(params["planted"]),
            "account files": lambda: read_file("/etc/passwd"),
            "engine's home": lambda: os.listdir(params["engine_home"]),
        }
