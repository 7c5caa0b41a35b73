"""An in-process `perpbot run` for risk scenarios: the real runner, plugins and pipeline,
ccxt over HTTP to a test simulator, and a strategy the test drives call by call."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import tomli_w

from perpbot.app import plugins
from perpbot.app.lifecycle import Runner
from perpbot.config import load_strategy
from perpbot.engine.context import Context
from perpbot.engine.loader import instantiate
from perpbot.engine.output import RunOutput
from perpbot.events import Decision
from perpbot.paths import bots_dir
from tests.integration.kill_strategies.support import quiet_market

HERE = Path(__file__).resolve().parent
BTC, BTC_ID = "BTC/USDT:USDT", "BTCUSDT"


def quiet() -> dict[str, Any]:
    """The kill tests' quiet market (resting orders stay where they are), as a dict."""
    return quiet_market().model_dump()


def write_toml(tmp_path: Path, url: str, **sections: dict[str, Any]) -> Path:
    doc: dict[str, Any] = {
        "strategy": {
            "name": "remote",
            "file": str(HERE / "remote.py"),
            "symbols": [BTC],
            "tick_interval": 0.1,
        },
        "exchange": {"id": "sim", "url": url},
        "audit": {"enabled": False},
    }
    for name, table in sections.items():
        doc.setdefault(name, {}).update(table)
    path = tmp_path / "remote.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


class Bot:
    def __init__(self, toml: Path) -> None:
        loaded = load_strategy(toml)
        plugins.preflight(loaded)
        self.strategy = instantiate(loaded)
        self.out = io.StringIO()
        self.runner = Runner(
            loaded, self.strategy, output=RunOutput("plain", self.out, io.StringIO())
        )
        plugins.attach(self.runner)
        self.events: list[Any] = []
        self.runner.bus.subscribe(self.events.append)
        self.task: asyncio.Task[dict[str, Any]] | None = None

    async def __aenter__(self) -> Bot:
        self.task = asyncio.create_task(self.runner.run())
        await self.until(lambda: self.runner.ctx is not None and self.runner.positions is not None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def stop(self) -> dict[str, Any]:
        assert self.task is not None
        if not self.task.done():
            self.runner.request_stop("test over")
        return await asyncio.wait_for(self.task, 30)

    async def do(self, fn: Callable[[Context], Any], timeout: float = 15.0) -> Any:
        """Run ``fn(ctx)`` in the strategy thread at the next tick; its result or error."""
        fut: Future[Any] = Future()
        self.strategy.inbox.put((fn, fut))  # type: ignore[attr-defined]
        try:
            return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)
        except TimeoutError:  # what the run said meanwhile, for whoever reads the failure
            said = "\n".join(f"{e.code}: {e.sentence}" for e in self.events[-40:]
                             if isinstance(e, Decision))  # fmt: skip
            raise AssertionError(
                f"the call did not return within {timeout} s:\n{self.out.getvalue()}\n{said}"
            ) from None

    async def until(self, pred: Callable[[], Any], timeout: float = 15.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self.task is not None and self.task.done():
                self.task.result()  # surface a crashed run
                raise AssertionError("the run ended while waiting")
            value = pred()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(
                    f"condition not met within {timeout} s:\n{self.out.getvalue()}"
                )
            await asyncio.sleep(0.05)

    def decisions(self, code: str) -> list[Decision]:
        return [e for e in self.events if isinstance(e, Decision) and e.code == code]

    def journal(self) -> list[dict[str, Any]]:
        """The run's events.jsonl: the decisions with their sentences, as logged."""
        path = self.runner.journal.dir / "events.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def status(self) -> dict[str, Any]:
        return json.loads((bots_dir() / f"{self.runner.run_id}.json").read_text())
