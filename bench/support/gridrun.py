"""Run the example grid bot (strategies/grid.py) in-process against its own simulator (in
its own process, as an exchange is: in this one it would compete for the GIL), on streams
or on REST polling, and observe it: the simulator's weight counter, the engine's fill
events. Used by bench/weight.py and bench/stream_latency.py."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class GridRun:
    streams: bool
    weight: int = 0
    seconds: float = 0.0
    paths: Counter[str] = field(default_factory=Counter)
    fill_lat_ms: list[float] = field(default_factory=list)
    mark_age_ms: list[float] = field(default_factory=list)
    fills: int = 0
    end_reason: str = ""

    @property
    def per_minute(self) -> float:
        return self.weight / self.seconds * 60.0 if self.seconds else 0.0


@contextlib.contextmanager
def simulator(seed: int, extra_toml: str = "") -> Iterator[str]:
    """``perpbot sim serve`` in a subprocess; yields its base URL."""
    config = Path(tempfile.mkdtemp(prefix="perpbot-bench-sim-")) / "sim.toml"
    config.write_text(f"seed = {seed}\n{extra_toml}")
    cmd = [sys.executable, "-m", "perpbot", "sim", "serve", "--config", str(config)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield json.loads(proc.stdout.readline())["base_url"]
    finally:
        proc.terminate()
        proc.wait(10)


def counters(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url + "/__sim/state", timeout=10) as resp:
        return json.loads(resp.read())["counters"]


def grid_toml(folder: Path, url: str, *, streams: bool, deadman: bool) -> Path:
    doc = tomllib.loads((ROOT / "strategies" / "grid.toml").read_text())
    doc["strategy"]["file"] = str(ROOT / "strategies" / "grid.py")
    doc["exchange"] = {"id": "sim", "url": url, "streams": streams}
    doc["kill"] = {"deadman": deadman}
    doc.pop("sim", None)
    path = folder / f"grid-{'streams' if streams else 'polling'}.toml"
    path.write_text(tomli_w.dumps(doc))
    return path


async def run_grid(
    *,
    streams: bool,
    warmup: float,
    seconds: float,
    deadman: bool,
    seed: int = 42,
    sample_mark_age: bool = False,
) -> GridRun:
    # the run's imports after PERPBOT_HOME is set (bench/weight.py sets a throwaway one)
    from perpbot.app import plugins
    from perpbot.app.lifecycle import Runner
    from perpbot.config import load_strategy
    from perpbot.engine.events import FillEvent
    from perpbot.engine.loader import instantiate
    from perpbot.engine.output import RunOutput

    result = GridRun(streams=streams)
    with simulator(seed) as url:
        folder = Path(tempfile.mkdtemp(prefix="perpbot-bench-grid-"))
        loaded = load_strategy(grid_toml(folder, url, streams=streams, deadman=deadman))
        runner = Runner(
            loaded,
            instantiate(loaded),
            output=RunOutput("plain", io.StringIO(), io.StringIO()),
            duration=warmup + seconds + 30.0,
        )
        plugins.attach(runner)
        measuring = False

        def on_event(event: Any) -> None:
            if measuring and isinstance(event, FillEvent):
                result.fills += 1
                result.fill_lat_ms.append((time.time() - event.fill.ts) * 1000.0)

        runner.engine_events.subscribe(on_event)
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(warmup)
        c0 = await asyncio.to_thread(counters, url)
        t0 = time.monotonic()
        measuring = True
        end = time.monotonic() + seconds
        symbol = runner.state.symbols[0]
        while time.monotonic() < end:
            await asyncio.sleep(0.1 if sample_mark_age else end - time.monotonic())
            seen = runner.state.mark_times.get(symbol)
            if sample_mark_age and seen is not None:
                result.mark_age_ms.append((time.time() - seen) * 1000.0)
        measuring = False
        c1 = await asyncio.to_thread(counters, url)
        result.seconds = time.monotonic() - t0
        result.weight = c1["weight_used"] - c0["weight_used"]
        result.paths = Counter(c1["per_path"]) - Counter(c0["per_path"])
        runner.request_stop("bench over")
        await asyncio.wait_for(task, 60)
        result.end_reason = runner.end_reason
    return result


def throwaway_home() -> None:
    os.environ["PERPBOT_HOME"] = tempfile.mkdtemp(prefix="perpbot-bench-home-")
