"""The strategy's side of a run: calls its callbacks in the documented order.

The engine drives the runtime with three plain messages, whichever side of a process
boundary it lives on (perpbot.engine.hosts):

    start(saved)         on_load(ctx, saved) when a saved state exists, then on_start(ctx)
    cycle(events, tick)  the events of perpbot.engine.feed in their order (on_kill, on_fill,
                         on_order_update, on_position_change), then the due timers (not
                         while the kill switch stands), then on_tick when ``tick``
    stop()               on_stop(ctx), then on_save(ctx) -> the state to persist

Each answers an ``Outcome`` (plain data): the errors the callbacks raised, each described
with the strategy file and line, and when the next timer is due. A callback's error never
stops the others of the cycle.
"""

from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any

from perpbot.engine.api import StrategyContext
from perpbot.engine.results import Fill, KillChange, OrderUpdate, PositionChange
from perpbot.engine.strategy import Strategy, StrategyStopped
from perpbot.errors import GUARD_EXIT_CODES, PerpbotError


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


def describe(exc: BaseException, callback: str, strategy_file: Path) -> dict[str, Any]:
    """An error as plain data: ``stopped``, ``fatal`` (exit 2/3/4) or a strategy error."""
    if isinstance(exc, StrategyStopped):
        return {"callback": callback, "stopped": True}
    if isinstance(exc, PerpbotError) and exc.exit_code in GUARD_EXIT_CODES:
        return {"callback": callback, "fatal": {"message": exc.message,
                "exit_code": exc.exit_code, "code": exc.code}}  # fmt: skip
    line = (
        f"strategy error in {callback} at {where(exc, strategy_file)}: {type(exc).__name__}: {exc}"
    )
    return {"callback": callback, "error": line,
            "traceback": strategy_traceback(exc, strategy_file)}  # fmt: skip


EVENT_CALLBACKS = {
    "kill": ("on_kill", lambda d: KillChange.of(d.get("state"))),
    "fill": ("on_fill", lambda d: Fill.of(d["fill"])),
    "order": ("on_order_update", OrderUpdate.of),
    "position": ("on_position_change", PositionChange.of),
}


class StrategyRuntime:
    def __init__(self, strategy: Strategy, ctx: StrategyContext, strategy_file: Path) -> None:
        self.strategy = strategy
        self.ctx = ctx
        self.strategy_file = strategy_file
        self.kill_standing = False

    def _outcome(self, errors: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        due = [t.due for t in self.ctx.timers.values()]
        return {"errors": errors, "next_timer": min(due) if due else None, **extra}

    def _call(self, name: str, fn: Any, *args: Any, errors: list[dict[str, Any]]) -> Any:
        try:
            return fn(self.ctx, *args)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise
            errors.append(describe(exc, name, self.strategy_file))
            return None

    def start(self, saved: dict[str, Any] | None) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        if saved is not None:
            self._call("on_load", self.strategy.on_load, saved, errors=errors)
        if not errors:
            self._call("on_start", self.strategy.on_start, errors=errors)
        return self._outcome(errors)

    def cycle(self, events: list[dict[str, Any]], tick: bool) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        for event in events:
            name, build = EVENT_CALLBACKS[event["type"]]
            if event["type"] == "kill":
                self.kill_standing = bool(event.get("state"))
            fn = getattr(self.strategy, name)
            self._call(name, fn, build(event), errors=errors)
            if any(e.get("stopped") or e.get("fatal") for e in errors):
                return self._outcome(errors)
        if not self.kill_standing:
            now = time.time()
            for timer in sorted(self.ctx.timers.values(), key=lambda t: t.due):
                if timer.due > now or timer.id not in self.ctx.timers:
                    continue
                if timer.every is None:
                    del self.ctx.timers[timer.id]
                else:  # next due time from the schedule, not from when it ran
                    timer.due += timer.every * max(1, int((now - timer.due) // timer.every) + 1)
                name = getattr(timer.fn, "__name__", "timer")
                self._call(f"timer {name}", lambda ctx, fn=timer.fn: fn(ctx), errors=errors)
        if tick and not any(e.get("stopped") or e.get("fatal") for e in errors):
            self._call("on_tick", self.strategy.on_tick, errors=errors)
        return self._outcome(errors)

    def stop(self) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        self._call("on_stop", self.strategy.on_stop, errors=errors)
        saved = self._call("on_save", self.strategy.on_save, errors=errors)
        return self._outcome(errors, saved=saved)

    def save(self) -> dict[str, Any]:
        errors: list[dict[str, Any]] = []
        saved = self._call("on_save", self.strategy.on_save, errors=errors)
        return self._outcome(errors, saved=saved)
