"""Forks, starts programs, and signals the engine."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
from collections.abc import Callable
from typing import Any

from perpbot.engine import Context
from tests.adversarial.hostile_strategies.base import Hostile


def fork() -> Any:
    pid = os.fork()
    if pid == 0:  # the child would be free of the engine's channel: it must never exist
        os._exit(0)
    return f"forked {pid}"


def run_curl(url: str) -> Any:
    return subprocess.run(["curl", "-s", f"{url}/fapi/v1/time"], capture_output=True).stdout


def spawn() -> Any:
    p = multiprocessing.get_context("spawn").Process(target=print)
    p.start()
    return f"spawned {p.pid}"


def kill_engine() -> Any:
    os.kill(os.getppid(), signal.SIGKILL)
    return "sent SIGKILL to the engine"


class Processes(Hostile):
    def attacks(self, ctx: Context) -> dict[str, Callable[[], Any]]:
        url = self.params["url"]
        return {
            "fork": fork,
            "subprocess": lambda: run_curl(url),
            "multiprocessing": spawn,
            "os.system": lambda: os.system("true") == 0,
            "kill the engine": kill_engine,
        }
