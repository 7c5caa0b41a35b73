"""The engine's side of an isolated strategy: start, serve and end its process.

``ProcessHost`` starts ``python -m perpbot.engine.isolation.child`` with a clean
environment (no API key or secret, no keyring or D-Bus address, a throw-away HOME) and one
end of a Unix socket pair, before the run connects (``ready``: the strategy is loaded and
its params valid, or exit 2); the child's stdout and stderr end up in ``strategy.log`` in
the run folder. Each runtime message is one conversation on the worker thread: send it, then serve
the child's ``ctx`` calls through the engine's own Context (so through every guard) until
it answers ``done``. Nothing the child sends is trusted: only the calls in
perpbot.engine.api.CALLS are made, with plain JSON arguments.

``close`` ends the process: the socket is shut (a healthy child exits at once), and after
CLOSE_GRACE_S a child that is still running (hung, spinning) is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import perpbot
from perpbot.config import LoadedStrategy
from perpbot.engine.api import LocalPort
from perpbot.engine.context import Context
from perpbot.engine.isolation import wire
from perpbot.engine.strategy import OrderRejected, StrategyStopped
from perpbot.engine.worker import StrategyWorker
from perpbot.errors import BadInput, PerpbotError
from perpbot.paths import state_path

CLOSE_GRACE_S = 1.0
Outcome = dict[str, Any]


def child_env(home: str) -> dict[str, str]:
    """All the strategy's process gets of the environment."""
    return {
        "PATH": "/usr/bin:/bin",
        "HOME": home,
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(Path(perpbot.__file__).resolve().parent.parent),
        "PYTHONSAFEPATH": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def run_dir_path(run_id: str) -> Path:
    return state_path() / "runs" / run_id  # (not created: the run creates it)


class StrategyProcessDied(PerpbotError):
    """The strategy's process ended (crash, kill) while the engine waited for it."""


class ProcessHost:
    """Started (and its strategy loaded and validated, ``ready``) before the run connects,
    so a bad ``[strategy.params]`` is exit 2 before any request; ``attach`` gives it the
    engine's Context once the run has one."""

    def __init__(self, loaded: LoadedStrategy, run_id: str) -> None:
        cfg = loaded.config.strategy
        strategy_file = loaded.resolve(cfg.file)
        self.run_id = run_id
        self.load_timeout_s = cfg.load_timeout_s  # to import the strategy's file, check params
        self._home = tempfile.mkdtemp(prefix="perpbot-strategy-")
        self._log = Path(self._home) / "strategy.log"
        ours, theirs = socket.socketpair()
        with open(self._log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "perpbot.engine.isolation.child", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                env=child_env(self._home),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=str(strategy_file.parent),
                start_new_session=True,  # a Ctrl-C at the terminal reaches the engine only
            )
        theirs.close()
        self.sock = ours
        self.port: LocalPort | None = None
        self.worker = StrategyWorker()
        self.confinement: dict[str, Any] | None = None
        self._ready = False
        init = {
            "op": "init",
            "file": str(strategy_file),
            "class_name": cfg.class_name,
            "params": cfg.params,
            "source": str(loaded.path),
            "symbols": list(cfg.symbols),
            "run_id": run_id,
            "memory_mb": cfg.memory_mb,
            "cpu_s": cfg.cpu_s,
            "engine_pid": os.getpid(),
        }
        with contextlib.suppress(OSError):  # a process already gone is told by ready()
            wire.send(self.sock, init)

    @property
    def log_path(self) -> Path:
        """Where the process's own output ends up (the run folder, once the run has one)."""
        return run_dir_path(self.run_id) / "strategy.log"

    def ready(self) -> None:
        """Wait until the strategy is loaded and confined: BadInput for a strategy that
        cannot be loaded or whose params are wrong; StrategyProcessDied otherwise."""
        if self._ready:
            return
        self.sock.settimeout(self.load_timeout_s)
        try:
            answer = wire.recv(self.sock)
        except wire.ChannelClosed:
            if self.proc.poll() is None:
                self.proc.kill()
                raise StrategyProcessDied(
                    f"the strategy did not load within {self.load_timeout_s:g} s "
                    "([strategy] load_timeout_s; its process was ended)"
                ) from None
            raise StrategyProcessDied(self._death()) from None
        finally:
            self.sock.settimeout(None)
        if answer.get("bad_input"):
            raise BadInput(answer["bad_input"])
        if answer.get("error") or answer.get("op") != "ready":
            broke = "the strategy's process broke the protocol"
            raise StrategyProcessDied(answer.get("error") or broke)
        self.confinement = answer.get("confinement")
        self._ready = True

    def exposure(self) -> str | None:
        """What the strategy's process can read that it should not, in one sentence (None:
        nothing): every file, where the kernel has no Landlock; or the state dir, when it
        lies beneath a folder the process imports from."""
        confinement = self.confinement or {}
        if not confinement.get("files_hidden"):
            return (
                "the strategy's process can read every file this user can (this kernel has "
                "no Landlock): keep API keys in the OS keyring, never in a file"
            )
        home = state_path().resolve()
        for root in confinement.get("readable") or ():
            if home == Path(root) or Path(root) in home.parents:
                return (
                    f"the state dir {home} lies beneath {root}, which the strategy's process "
                    "can read (it imports from there): move the state dir ($PERPBOT_HOME) "
                    "out of it"
                )
        return None

    def attach(self, context: Context) -> None:
        self.port = LocalPort(context)

    @property
    def busy(self) -> bool:
        return self.worker.busy

    # -- the runtime's messages -------------------------------------------------------------
    def start(self, saved: dict[str, Any] | None) -> Future[Outcome]:
        return self.worker.submit(lambda: self._start(saved))

    def cycle(self, events: list[dict[str, Any]], tick: bool) -> Future[Outcome]:
        return self.worker.submit(
            lambda: self._converse({"op": "cycle", "events": events, "tick": tick})
        )

    def stop(self) -> Future[Outcome]:
        return self.worker.submit(lambda: self._converse({"op": "stop"}))

    def save(self) -> Future[Outcome]:
        return self.worker.submit(lambda: self._converse({"op": "save"}))

    def _start(self, saved: dict[str, Any] | None) -> Outcome:
        try:
            self.ready()
        except BadInput as exc:
            fatal = {"message": exc.message, "exit_code": exc.exit_code, "code": None}
            return {"errors": [{"callback": "load", "fatal": fatal}], "next_timer": None}
        return self._converse({"op": "start", "saved": saved})

    def _recv(self) -> Any:
        try:
            return wire.recv(self.sock)
        except wire.ChannelClosed:
            raise StrategyProcessDied(self._death()) from None

    def _converse(self, message: dict[str, Any]) -> Outcome:
        try:
            wire.send(self.sock, message)
        except OSError:
            raise StrategyProcessDied(self._death()) from None
        while True:
            msg = self._recv()
            op = msg.get("op") if isinstance(msg, dict) else None
            if op == "done":
                outcome = msg.get("outcome")
                return outcome if isinstance(outcome, dict) else {"errors": []}
            if op != "call":
                raise StrategyProcessDied(f"the strategy's process broke the protocol ({op!r})")
            wire.send(self.sock, self._serve(msg))

    def _serve(self, msg: dict[str, Any]) -> dict[str, Any]:
        name, args, kwargs = msg.get("name"), msg.get("args"), msg.get("kwargs")
        if not isinstance(name, str) or not isinstance(args, list) or not isinstance(kwargs, dict):
            return {"op": "raise", "kind": "error", "message": "malformed ctx call"}
        if self.port is None:
            return {"op": "raise", "kind": "error", "message": "the run is not connected yet"}
        try:
            return {"op": "result", "value": self.port.call(name, args, kwargs)}
        except OrderRejected as exc:
            return {"op": "raise", "kind": "rejected", "code": exc.code, "sentence": exc.sentence}
        except StrategyStopped:
            return {"op": "raise", "kind": "stopped"}
        except PerpbotError as exc:
            return {"op": "raise", "kind": "perpbot", "message": exc.message,
                    "exit_code": exc.exit_code, "code": exc.code}  # fmt: skip
        except Exception as exc:  # a bad argument, an exchange error: the strategy's to see
            return {"op": "raise", "kind": "error", "message": f"{type(exc).__name__}: {exc}"}

    def _death(self) -> str:
        try:
            code = self.proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            return "the strategy's process closed its channel"
        how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited ({code})"
        if code == -signal.SIGXCPU:
            how += " (it used up its [strategy] cpu_s)"
        return f"the strategy's process {how}; its output is in {self.log_path}"

    # -- the end ----------------------------------------------------------------------------
    def close(self) -> None:
        """End the process: EOF first, SIGKILL after CLOSE_GRACE_S (hung or spinning)."""
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        try:
            self.proc.wait(timeout=CLOSE_GRACE_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10.0)
        self.sock.close()
        with contextlib.suppress(OSError):
            if self._log.stat().st_size and run_dir_path(self.run_id).is_dir():
                shutil.copyfile(self._log, self.log_path)
        shutil.rmtree(self._home, ignore_errors=True)
