"""Getting the metrics out: a scrape endpoint, or a file for node_exporter's textfile
collector (written atomically by prometheus-client: a temp file renamed over the old one)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server, write_to_textfile


@dataclass(slots=True)
class Exporter:
    registry: CollectorRegistry
    textfile: Path | None = None
    server: Any = None
    thread: Any = None
    port: int | None = None
    errors: list[str] = field(default_factory=list)

    def serve(self, port: int, bind: str = "127.0.0.1") -> int:
        """Serve /metrics on a daemon thread; the port actually bound (``port=0``: any)."""
        self.server, self.thread = start_http_server(port, addr=bind, registry=self.registry)
        self.port = int(self.server.server_address[1])
        return self.port

    def write(self) -> None:
        if self.textfile is not None:
            write_to_textfile(str(self.textfile), self.registry)

    def close(self) -> None:
        self.write()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None
