"""The strategy's own thread (``isolation = "thread"``), or the thread that talks to its
process (``isolation = "process"``).

Strategy callbacks run in one daemon worker thread, in order. Not a ThreadPoolExecutor: its
threads are joined at interpreter exit, so a strategy that never returns would keep the
process alive after the run has stopped.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any


class StrategyWorker:
    def __init__(self) -> None:
        self._jobs: list[tuple[Callable[[], Any], Future[Any]]] = []
        self._cv = threading.Condition()
        self.busy = False
        self._thread = threading.Thread(target=self._loop, name="perpbot-strategy", daemon=True)
        self._thread.start()

    def submit(self, fn: Callable[[], Any]) -> Future[Any]:
        fut: Future[Any] = Future()
        with self._cv:
            self._jobs.append((fn, fut))
            self._cv.notify()
        return fut

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not self._jobs:
                    self._cv.wait()
                fn, fut = self._jobs.pop(0)
                self.busy = True
            try:
                fut.set_result(fn())
            except BaseException as exc:
                fut.set_exception(exc)
            finally:
                self.busy = False
