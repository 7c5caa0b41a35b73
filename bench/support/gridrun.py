"""Run the example grid bot (strategies/grid.py) in-process against its own simulator, on
streams or on REST polling, and observe it: the simulator's weight counter, the engine's
fill events. Used by bench/weight.py and bench/stream_latency.py."""

from __future__ import annotations

import asyncio
import io
import os
import tempfile
import time
import tomllib
from collections import Counter
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
    fills: int = 0
    end_reason: str = ""

    @property
    def per_minute(self) -> float:
        return self.weight / self.seconds * 60.0 if self.seconds else 0.0


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
    *, streams: bool, warmup: float, seconds: float, deadman: bool, seed: int = 42
) -> GridRun:
    # the run's imports after PERPBOT_HOME is set (bench/weight.py sets a throwaway one)
    from perpbot.app import plugins
    from perpbot.app.lifecycle import Runner
    from perpbot.config import load_strategy
    from perpbot.engine.events import FillEvent
    from perpbot.engine.loader import instantiate
    from perpbot.engine.output import RunOutput
    from perpbot.sim import SimConfig, start_in_thread

    handle = start_in_thread(SimConfig(seed=seed), host="127.0.0.1", port=0)
    result = GridRun(streams=streams)
    try:
        folder = Path(tempfile.mkdtemp(prefix="perpbot-bench-grid-"))
        loaded = load_strategy(grid_toml(folder, handle.base_url, streams=streams, deadman=deadman))
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
        stats = handle.server.stats
        w0, p0, t0 = stats.weight_used, Counter(stats.per_path), time.monotonic()
        measuring = True
        await asyncio.sleep(seconds)
        measuring = False
        result.weight = stats.weight_used - w0
        result.seconds = time.monotonic() - t0
        result.paths = Counter(stats.per_path) - p0
        runner.request_stop("bench over")
        await asyncio.wait_for(task, 60)
        result.end_reason = runner.end_reason
    finally:
        handle.stop()
    return result


def throwaway_home() -> None:
    os.environ["PERPBOT_HOME"] = tempfile.mkdtemp(prefix="perpbot-bench-home-")
