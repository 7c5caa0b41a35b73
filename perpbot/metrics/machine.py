"""`perpbot metrics serve`: one exporter for every bot on this machine, from their status
files (``<state>/bots/*.json``, rewritten by each bot every tick).

It needs no ``[metrics]`` in any strategy and survives bots coming and going, but a status
file holds state, not history: it exports the gauges (positions, mark, liquidation
distance, PnL, equity, open orders, weight used/limit, budget factor, ban, kill state, run
start and last tick) and ``perpbot_bot_up``. Counters (requests, 429/418, decisions, waits,
alert deliveries) come from a run's own ``[metrics]`` endpoint or textfile.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from perpbot.fsutil import read_json
from perpbot.identity import RunIdentity
from perpbot.metrics.collector import RunMetrics
from perpbot.paths import bots_dir
from perpbot.procs import pid_alive

LIVE_STATES = ("starting", "running", "stopping")


def live_bots(folder: Path | None = None) -> list[dict[str, Any]]:
    """Status documents of bots whose process is alive."""
    out = []
    for path in sorted((folder or bots_dir()).glob("*.json")):
        try:
            doc = read_json(path)
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or doc.get("state") not in LIVE_STATES:
            continue
        started = doc.get("started_at")
        if pid_alive(doc.get("pid"), started_at=started if isinstance(started, float) else None):
            out.append(doc)
    return out


def _run_metrics(doc: dict[str, Any]) -> RunMetrics:
    exchange = str(doc.get("exchange"))
    identity = RunIdentity(
        run_id=str(doc.get("run_id")),
        bot=str(doc.get("strategy")),
        exchange=exchange,
        exchange_host=str(doc.get("exchange_host") or exchange),  # the status file has no URL
        symbols=tuple(str(s) for s in doc.get("symbols") or []),
    )
    m = RunMetrics(identity)
    m.on_tick(doc.get("snapshot") or {}, doc.get("positions") or {})
    b = m.base
    if isinstance(doc.get("started_at"), int | float):
        m.started.labels(*b).set(doc["started_at"])
    if isinstance(doc.get("updated_at"), int | float):
        m.last_tick.labels(*b).set(doc["updated_at"])
    return m


class StatusCollector(Collector):
    """Reads the status files at every scrape; gauges only (see the module doc)."""

    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder

    def collect(self) -> Iterator[Metric]:
        bots = live_bots(self.folder)
        up = GaugeMetricFamily(
            "perpbot_bot_up", "1 for each bot whose process is alive.", labels=["bot", "run_id"]
        )
        merged: dict[str, Metric] = {}
        for doc in bots:
            up.add_metric([str(doc.get("strategy")), str(doc.get("run_id"))], 1.0)
            for family in _run_metrics(doc).registry.collect():
                if family.type != "gauge":
                    continue  # zeros from a fresh registry, not this bot's history
                into = merged.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                into.samples.extend(family.samples)
        yield up
        yield from merged.values()


def serve_forever(
    port: int, bind: str, textfile: Path | None, interval: float, stop_after: float | None
) -> None:
    registry = CollectorRegistry()
    registry.register(StatusCollector())
    server = None
    if textfile is None:
        server, _thread = start_http_server(port, addr=bind, registry=registry)
        print(f"perpbot metrics on http://{bind}:{server.server_address[1]}/metrics", flush=True)
    deadline = None if stop_after is None else time.monotonic() + stop_after
    try:
        while deadline is None or time.monotonic() < deadline:
            if textfile is not None:
                write_to_textfile(str(textfile), registry)
            time.sleep(interval if textfile is not None else 0.5)
    finally:
        if server is not None:
            server.shutdown()
