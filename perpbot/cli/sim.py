"""`perpbot sim serve`: run the loopback Binance USD-M simulator until SIGINT/SIGTERM.

It prints exactly one JSON line on stdout (base URL and a throwaway account) so a script
or another process can connect at once. aiohttp is imported only inside the command, so
`perpbot --help` stays fast.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import typer

from perpbot.errors import BadInput, RuntimeFailure

sim_app = typer.Typer(help="The loopback exchange simulator.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")


@sim_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(0, "--port", help="TCP port (0 = pick a free one)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for prices and faults."),
    config: Path | None = typer.Option(None, "--config", help="A sim.toml file."),
) -> None:
    """Serve the simulator; prints {"base_url", "api_key", "api_secret"} as one JSON line."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.sim.config import SimConfig

    if not 0 <= port <= 65535:
        raise BadInput(f"--port: got {port}, expected 0..65535")
    cfg = SimConfig.from_toml(config) if config is not None else SimConfig()
    if seed is not None:
        cfg = cfg.model_copy(update={"seed": seed})

    async def main() -> int:
        # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
        from perpbot.sim.server import SimServer

        server = SimServer(cfg)
        try:
            base_url = await server.start(host, port)
        except OSError as exc:
            raise RuntimeFailure(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        key, secret = server.create_account()
        line = json.dumps({"base_url": base_url, "api_key": key, "api_secret": secret})
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
        loop = asyncio.get_running_loop()
        stopped = asyncio.Event()
        exit_code = {"code": 0}

        def on_signal(signum: int) -> None:
            exit_code["code"] = 130 if signum == signal.SIGINT else 0
            stopped.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        try:
            await stopped.wait()
        finally:
            await server.stop()
        return exit_code["code"]

    code = asyncio.run(main())
    if code:
        raise typer.Exit(code)
