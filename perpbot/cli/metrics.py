"""`perpbot metrics serve`: Prometheus metrics for every bot on this machine."""

from __future__ import annotations

from pathlib import Path

import typer

from perpbot.errors import BadInput, RuntimeFailure

metrics_app = typer.Typer(
    name="metrics", help="Prometheus metrics (docs/operations.md).", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(metrics_app)


@metrics_app.command("serve")
def serve(
    port: int = typer.Option(9464, "--port", help="Port for /metrics (0: any free port)."),
    bind: str = typer.Option("127.0.0.1", "--bind", help="Address to listen on."),
    textfile: Path | None = typer.Option(
        None, "--textfile", help="Write this .prom file (textfile collector) instead of serving."
    ),
    interval: float = typer.Option(15.0, "--interval", help="Seconds between textfile writes."),
    duration: float | None = typer.Option(None, "--duration", help="Stop after this long."),
) -> None:
    """Serve the gauges of every running bot (from their status files) until Ctrl-C."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.metrics.machine import serve_forever

    if not 0 <= port <= 65535:
        raise BadInput(f"--port: got {port}, expected 0-65535")
    if interval <= 0:
        raise BadInput(f"--interval: got {interval:g}, expected seconds > 0")
    if textfile is not None and not textfile.parent.is_dir():
        raise BadInput(f"--textfile {textfile}: {textfile.parent} is not a directory")
    try:
        serve_forever(port, bind, textfile, interval, duration)
    except OSError as exc:
        raise RuntimeFailure(
            f"cannot serve metrics on {bind}:{port} ({exc.strerror or type(exc).__name__})"
        ) from None
