"""Helpers for the kill-switch integration tests: a bot subprocess on a test simulator.

The simulator runs in the test process (``sim_factory``), the bot is a real `perpbot run`
subprocess talking ccxt over HTTP to it, and assertions read the simulator's ground truth
(every order with its ms timestamps) rather than what the bot says it did.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from perpbot.sim.config import MarketConfig
from tests.conftest import ROOT

HERE = Path(__file__).resolve().parent
SYMBOLS = {"BTC/USDT:USDT": "BTCUSDT", "ETH/USDT:USDT": "ETHUSDT"}


def quiet_market() -> MarketConfig:
    """No drift, no jumps, no synthetic takers: resting orders stay resting."""
    return MarketConfig(volatility=0.0, jump_rate=0.0, taker_rate=0.0, history_minutes=30)


def write_strategy(
    tmp_path: Path,
    url: str,
    *,
    params: dict[str, Any] | None = None,
    kill: dict[str, Any] | None = None,
    strategy: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    exchange: dict[str, Any] | None = None,
    name: str = "hang.toml",
) -> Path:
    doc = tomllib.loads((HERE / "hang.toml").read_text())
    doc["strategy"]["file"] = str(HERE / "hang.py")
    doc["strategy"].update(strategy or {})
    doc["strategy"]["params"].update(params or {})
    doc["exchange"]["url"] = url
    doc["exchange"].update(exchange or {})
    doc["kill"].update(kill or {})
    doc.update(extra or {})
    path = tmp_path / name
    path.write_text(tomli_w.dumps(doc))
    return path


BotFiles = tuple[Any, tuple[str, str], Path]  # (sim, (key, secret), strategy.toml)
MakeBotFiles = Callable[..., BotFiles]  # write_strategy's keywords -> BotFiles


def wait_until(pred: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


@dataclass
class Bot:
    proc: subprocess.Popen[str]
    out: Path
    err: Path

    def finish(self, timeout: float = 30.0) -> tuple[int, str, str]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"bot did not exit within {timeout} s; stderr: {self.err.read_text()[-2000:]}"
            ) from None
        return code, self.out.read_text(), self.err.read_text()

    def signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def stop(self) -> None:
        """Teardown: make sure no bot outlives its test."""
        if self.proc.poll() is None:
            with_cont = [signal.SIGCONT, signal.SIGKILL]
            for sig in with_cont:
                self.signal(sig)
            self.proc.wait(10)


def start_bot(
    toml: Path, tmp_path: Path, creds: tuple[str, str], *args: str, tag: str = "bot"
) -> Bot:
    env = dict(os.environ)
    env["PERPBOT_SIM_API_KEY"], env["PERPBOT_SIM_API_SECRET"] = creds
    out, err = tmp_path / f"{tag}.out", tmp_path / f"{tag}.err"
    proc = subprocess.Popen(
        [sys.executable, "-m", "perpbot", "run", str(toml), "--plain", *args],
        stdout=out.open("w"),
        stderr=err.open("w"),
        env=env,
        cwd=str(ROOT),
        text=True,
    )
    return Bot(proc, out, err)


def sim_env(creds: tuple[str, str]) -> dict[str, str]:
    return {"PERPBOT_SIM_API_KEY": creds[0], "PERPBOT_SIM_API_SECRET": creds[1]}


def orders_of(state: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [o for o in state["orders"] if o["account"] == key]


def open_orders_of(state: dict[str, Any], key: str) -> list[dict[str, Any]]:
    return [o for o in state["open_orders"] if o["account"] == key]


def account_of(state: dict[str, Any], key: str) -> dict[str, Any]:
    return next(a for a in state["accounts"] if a["api_key"] == key)


def position_of(state: dict[str, Any], key: str, symbol_id: str) -> float:
    for p in account_of(state, key)["positions"]:
        if p["symbol"] == symbol_id:
            return float(p["positionAmt"])
    return 0.0


def now_ms() -> int:
    return time.time_ns() // 1_000_000


class InProcessBot:
    """`perpbot run` inside the test's event loop (what cli/run.py does, minus the process).

    For tests that inspect the runner itself (trips, backoff); tests of the process model
    (exit codes, SIGKILL, SIGSTOP) use ``start_bot``.
    """

    def __init__(self, toml: Path) -> None:
        from perpbot.app import plugins
        from perpbot.app.lifecycle import Runner
        from perpbot.config import load_strategy
        from perpbot.engine.loader import instantiate
        from perpbot.engine.output import RunOutput

        loaded = load_strategy(toml)
        strategy = instantiate(loaded)
        plugins.preflight(loaded)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.runner = Runner(loaded, strategy, output=RunOutput("plain", self.out, self.err))
        plugins.attach(self.runner)
        self.events: list[Any] = []
        self.runner.bus.subscribe(self.events.append)
        self.task: asyncio.Task[dict[str, Any]] | None = None

    def start(self) -> InProcessBot:
        self.task = asyncio.ensure_future(self.runner.run())
        return self

    async def until(self, pred: Callable[[], Any], timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = await asyncio.to_thread(pred)
            if value:
                return value
            assert self.task is not None
            if self.task.done():
                self.task.result()
                raise AssertionError("the run ended while waiting")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.05)

    async def finish(self, timeout: float = 20.0) -> dict[str, Any]:
        assert self.task is not None
        return await asyncio.wait_for(self.task, timeout)

    def decisions(self, code: str) -> list[Any]:
        return [e for e in self.events if getattr(e, "code", None) == code]
