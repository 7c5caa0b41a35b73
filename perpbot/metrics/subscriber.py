"""``attach(bus, section, identity)``: a run's metrics, subscribed and exported."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from perpbot.config import MetricsSection
from perpbot.errors import BadInput
from perpbot.events import Decision, EventBus
from perpbot.identity import RunIdentity
from perpbot.metrics.collector import RunMetrics
from perpbot.metrics.export import Exporter


@dataclass(slots=True)
class RunExport:
    metrics: RunMetrics
    exporter: Exporter
    bus: EventBus
    announcement: Decision | None = None

    def announce(self) -> None:
        """Publish where the metrics are served (once the run's journal listens)."""
        if self.announcement is not None:
            self.bus.publish(self.announcement)
            self.announcement = None

    def on_tick(self, snap: Mapping[str, Any], positions: Mapping[str, Mapping[str, Any]]) -> None:
        self.metrics.on_tick(snap, positions)
        self.exporter.write()

    def close(self) -> None:
        self.exporter.close()


def attach(bus: EventBus, section: MetricsSection, identity: RunIdentity) -> RunExport | None:
    """None when ``[metrics]`` sets neither a port nor a textfile."""
    if section.port is None and section.textfile is None:
        return None
    metrics = RunMetrics(identity)
    exporter = Exporter(metrics.registry, Path(section.textfile) if section.textfile else None)
    bus.subscribe(metrics.on_event)
    export = RunExport(metrics, exporter, bus)
    if section.port is not None:
        try:
            port = exporter.serve(section.port, section.bind)
        except OSError as exc:
            raise BadInput(
                f"[metrics] port: got {section.port}, expected a free port on {section.bind} "
                f"({exc.strerror or type(exc).__name__})"
            ) from None
        export.announcement = Decision(
            "metrics",
            "info",
            "METRICS_SERVING",
            f"Prometheus metrics on http://{section.bind}:{port}/metrics",
            {"port": port, "bind": section.bind},
        )
    exporter.write()
    return export
