"""`perpbot sim serve`: run the loopback Binance USD-M simulator until SIGINT/SIGTERM.

It prints exactly one JSON line on stdout (base URL and a throwaway account) so a script
or another process can connect at once. aiohttp is imported only inside the command, so
`perpbot --help` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from perpbot.errors import BadInput, RuntimeFailure

if TYPE_CHECKING:
    from perpbot.sim.config import SimConfig

sim_app = typer.Typer(help="The loopback exchange simulator.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(sim_app, name="sim")


@sim_app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(0, "--port", help="TCP port (0 = pick a free one)."),
    seed: int | None = typer.Option(None, "--seed", help="Seed for prices and faults."),
    config: Path | None = typer.Option(None, "--config", help="A sim.toml file."),
    replay: list[Path] | None = typer.Option(
        None,
        "--replay",
        help="Replay a data.binance.vision file (aggTrades, bookTicker, klines,"
        " markPriceKlines; .csv or .zip); repeat for several.",
    ),
    speed: float | None = typer.Option(
        None, "--speed", help="Clock speed: N times real time (replays: 1 = as recorded)."
    ),
    live: list[str] | None = typer.Option(
        None,
        "--live",
        help="Follow another exchange's public trades: EXCHANGE:SYMBOL, e.g."
        " binanceusdm:BTC/USDT:USDT (ccxt ids and symbols); repeat for several.",
    ),
) -> None:
    """Serve the simulator; prints {"base_url", "api_key", "api_secret"} as one JSON line."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    import asyncio
    import json
    import signal

    from perpbot.sim.config import SimConfig

    if not 0 <= port <= 65535:
        raise BadInput(f"--port: got {port}, expected 0..65535")
    cfg = SimConfig.from_toml(config) if config is not None else SimConfig()
    if seed is not None:
        cfg = cfg.model_copy(update={"seed": seed})
    cfg = apply_source_options(cfg, replay or [], speed, live or [])

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


def apply_source_options(
    cfg: SimConfig, replay: list[Path], speed: float | None, live: list[str]
) -> SimConfig:
    """--replay / --speed / --live on top of the config file's [source] and clock."""
    # lazy: start-up speed of `perpbot --help` (it must not load pydantic)
    from pydantic import ValidationError

    from perpbot.sim.config import ReplayFile, SimConfig, SourceConfig, describe_error

    if replay and live:
        raise BadInput("--replay and --live: choose one market source")
    if speed is not None and not 0 < speed <= 10_000:
        raise BadInput(f"--speed: got {speed}, expected a number > 0 and <= 10000")
    update: dict[str, object] = {}
    if speed is not None:
        update["clock_speed"] = speed
    source = None
    if replay:
        source = SourceConfig(kind="replay", files=[ReplayFile(path=p) for p in replay])
    if live:
        exchange = ""
        symbols: dict[str, str] = {}
        for item in live:
            ex_id, _, symbol = item.partition(":")
            if not ex_id or not symbol or (exchange and ex_id != exchange):
                raise BadInput(
                    f"--live: got {item!r}, expected EXCHANGE:SYMBOL (one exchange), e.g."
                    " binanceusdm:BTC/USDT:USDT"
                )
            exchange = ex_id
            sim_symbol = symbol.split(":")[0].replace("/", "").upper()
            symbols[sim_symbol] = symbol
        known = {s.symbol for s in cfg.symbols}
        unknown = sorted(set(symbols) - known)
        if unknown:
            raise BadInput(
                f"--live: {', '.join(unknown)} not in the simulator's symbols"
                f" ({', '.join(sorted(known))}); add [[symbols]] to the sim config"
            )
        source = SourceConfig(kind="live", exchange=exchange, symbols=symbols, url=cfg.source.url)
    if source is not None:
        update["source"] = source
    if not update:
        return cfg
    try:
        return SimConfig.model_validate({**cfg.model_dump(), **update})
    except ValidationError as exc:
        raise BadInput(describe_error(exc)) from None
