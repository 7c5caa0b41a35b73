"""Run the simulator in its own thread and event loop, with a thread-safe handle.

Tests and the embedded paper-trading mode are mostly synchronous code (or run their own
event loop), so the simulator gets a private loop in a daemon thread; every handle method
marshals its call onto that loop, which keeps the engine single-threaded and lock-free.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from perpbot.sim.config import SimConfig
from perpbot.sim.server import SimServer

T = TypeVar("T")
CALL_TIMEOUT_S = 30.0


class SimHandle:
    """Control a simulator started by :func:`start_in_thread`."""

    def __init__(
        self, server: SimServer, loop: asyncio.AbstractEventLoop, thread: threading.Thread
    ) -> None:
        self.server = server
        self.base_url = server.base_url
        self._loop = loop
        self._thread = thread
        self._stopped = False
        self._lock = threading.Lock()

    def _call(self, fn: Callable[[], T]) -> T:
        if self._stopped:
            raise RuntimeError("the simulator has been stopped")

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(CALL_TIMEOUT_S)

    def create_account(
        self, permissions: dict[str, Any] | None = None, balance: float | None = None
    ) -> tuple[str, str]:
        """Create an API key; returns (api_key, api_secret)."""
        return self._call(lambda: self.server.create_account(permissions, balance))

    def state(self) -> dict[str, Any]:
        """The same JSON as ``GET /__sim/state``."""
        return self._call(lambda: self.server.control.call("GET", "/__sim/state", {}))

    def set_faults(self, plan: dict[str, Any]) -> None:
        """Replace the fault plan (same as ``POST /__sim/faults``)."""
        self._call(lambda: self.server.control.set_faults(plan))

    def maintenance(self, active: bool = True, ms: int | None = None) -> dict[str, Any]:
        """Open (``ms`` long, or until ended) or end a maintenance window (same as
        ``POST /__sim/maintenance``)."""
        body: dict[str, Any] = {"active": active} if ms is None else {"active": active, "ms": ms}
        return self._call(lambda: self.server.control.call("POST", "/__sim/maintenance", body))

    def advance(self, ms: int) -> int:
        """Step a manual clock by ``ms``; returns the new server time."""
        result = self._call(lambda: self.server.control.call("POST", "/__sim/advance", {"ms": ms}))
        return int(result["server_time"])

    def jump(self, symbol: str, pct: float) -> None:
        """Move ``symbol``'s price by ``pct`` percent at once."""
        self._call(
            lambda: self.server.control.call("POST", "/__sim/market", {"jump": {symbol: pct}})
        )

    def stop(self) -> None:
        """Stop serving and join the thread; safe to call more than once."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(CALL_TIMEOUT_S)

    def __enter__(self) -> SimHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(
    cfg: SimConfig | None = None, host: str = "127.0.0.1", port: int = 0
) -> SimHandle:
    """Start a simulator in a daemon thread; returns once it is listening."""
    ready = threading.Event()
    box: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = SimServer(cfg)
        try:
            loop.run_until_complete(server.start(host, port))
        except BaseException as exc:  # reported to the caller below
            box["error"] = exc
            ready.set()
            loop.close()
            return
        box["server"], box["loop"] = server, loop
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.stop())
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, name="perpbot-sim", daemon=True)
    thread.start()
    if not ready.wait(CALL_TIMEOUT_S):
        raise RuntimeError("the simulator did not start listening in time")
    if "error" in box:
        raise box["error"]
    return SimHandle(box["server"], box["loop"], thread)
