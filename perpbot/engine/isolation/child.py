"""The strategy's process: ``python -m perpbot.engine.isolation.child FD``.

Started by the engine (perpbot.engine.isolation.host) with a clean environment and one
Unix socket (FD). It reads its ``init`` message, confines itself (perpbot.engine.isolation
.sandbox) BEFORE importing the strategy's file, loads and validates the strategy, then
serves the runtime's messages (start, cycle, stop, save) until the engine closes the socket.
Every ``ctx`` call becomes a ``call`` frame; the engine answers ``result`` or ``raise``.

What it never has: the API key or secret, the ccxt object, the engine, the state dir's
path, a way to open a socket, to start a process or to signal one.
"""

from __future__ import annotations

import dataclasses
import socket
import sys
import traceback
from pathlib import Path
from typing import Any

from perpbot.engine.api import StrategyContext, plain
from perpbot.engine.isolation import sandbox, wire
from perpbot.engine.loader import load_strategy_class, validate_params
from perpbot.engine.runtime import StrategyRuntime
from perpbot.engine.strategy import OrderRejected, StrategyStopped
from perpbot.errors import (
    EXIT_BAD_INPUT,
    EXIT_FAIL,
    EXIT_OK,
    BadInput,
    PerpbotError,
    error_for_exit_code,
)


class ChildPort:
    """A ``ctx`` call as a frame to the engine; its answer or its error back."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        wire.send(self._sock, {"op": "call", "name": name, "args": plain(args),
                               "kwargs": plain(kwargs)})  # fmt: skip
        answer = wire.recv(self._sock)
        if answer.get("op") == "result":
            return answer.get("value")
        kind = answer.get("kind")
        if kind == "rejected":
            raise OrderRejected(answer["code"], answer["sentence"])
        if kind == "stopped":
            raise StrategyStopped("the run is stopping")
        if kind == "perpbot":
            raise error_for_exit_code(answer["message"], answer["exit_code"], answer.get("code"))
        raise RuntimeError(answer.get("message") or "the engine refused the call")


def serve(sock: socket.socket) -> int:
    init = wire.recv(sock)
    path = Path(init["file"])
    confinement = sandbox.apply(
        int(init["memory_mb"]), init.get("cpu_s"), int(init["engine_pid"]), str(path.parent)
    )
    if not confinement.seccomp and init.get("require_seccomp", True):
        error = "the strategy's process could not confine itself (seccomp filter refused)"
        wire.send(sock, {"op": "ready", "error": f"{error}; the strategy was not loaded"})
        return EXIT_FAIL
    try:
        cls = load_strategy_class(path, init.get("class_name"), init["source"])
        params = validate_params(cls, init.get("params") or {}, init["source"])
        strategy = cls(params)
    except BadInput as exc:
        wire.send(sock, {"op": "ready", "bad_input": exc.message})
        return EXIT_BAD_INPUT
    ctx = StrategyContext(
        ChildPort(sock), symbols=init["symbols"], params=params, run_id=init["run_id"]
    )
    runtime = StrategyRuntime(strategy, ctx, path)
    wire.send(sock, {"op": "ready", "confinement": dataclasses.asdict(confinement)})
    while True:
        try:
            msg = wire.recv(sock)
        except wire.ChannelClosed:
            return EXIT_OK
        op = msg.get("op")
        if op == "start":
            outcome = runtime.start(msg.get("saved"))
        elif op == "cycle":
            outcome = runtime.cycle(msg.get("events") or [], bool(msg.get("tick")))
        elif op == "stop":
            outcome = runtime.stop()
        elif op == "save":
            outcome = runtime.save()
        else:
            return EXIT_FAIL
        wire.send(sock, {"op": "done", "outcome": plain(outcome)})


def main() -> int:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        return serve(sock)
    except wire.ChannelClosed:
        return EXIT_OK
    except PerpbotError as exc:
        print(f"strategy process: {exc.message}", file=sys.stderr)
        return EXIT_FAIL
    except BaseException:  # the run folder's strategy.log keeps the traceback (file:line)
        traceback.print_exc()
        return EXIT_FAIL


if __name__ == "__main__":
    sys.exit(main())
