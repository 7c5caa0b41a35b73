"""The strategy's own thread, and how its errors are told.

Strategy callbacks run in one daemon worker thread, in order. Not a ThreadPoolExecutor: its
threads are joined at interpreter exit, so a strategy that never returns would keep the
process alive after the run has stopped.

A strategy error names the strategy file and line where it happened (the deepest frame of
the strategy's own file); its traceback, restricted to the strategy's own frames, goes to
the run folder and, under ``--verbose``, to stderr.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
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


def strategy_frames(exc: BaseException, strategy_file: Path) -> list[traceback.FrameSummary]:
    """The frames of ``exc``'s traceback that are in the strategy's own file."""
    target = str(strategy_file.resolve())
    frames = traceback.extract_tb(exc.__traceback__)
    return [f for f in frames if f.filename and str(Path(f.filename).resolve()) == target]


def where(exc: BaseException, strategy_file: Path) -> str:
    """``grid.py:57 in on_tick`` for the deepest strategy frame (the file alone if none)."""
    frames = strategy_frames(exc, strategy_file)
    if not frames:
        return str(strategy_file)
    last = frames[-1]
    return f"{strategy_file}:{last.lineno} in {last.name}"


def strategy_traceback(exc: BaseException, strategy_file: Path) -> str:
    """The strategy's own frames, formatted like Python does, then the error line."""
    frames = strategy_frames(exc, strategy_file)
    lines = ["Traceback (the strategy's own frames):\n", *traceback.format_list(frames)]
    lines.extend(traceback.format_exception_only(type(exc), exc))
    return "".join(lines)
