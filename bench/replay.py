"""Replay throughput: one day of BTCUSDT aggTrades through the simulator, a bot attached.

Writes a synthetic day of aggTrades (``--rows``, default 1 000 000) in Binance's exact
published format (the ``.zip`` holding one CSV with the header row, as data.binance.vision
serves it), then replays it in accelerated mode: a manual clock advanced as fast as the
machine allows, in ``--chunk-s`` steps of simulated time. Between chunks a market-making
bot, an unmodified ccxt ``binanceusdm`` over HTTP, re-quotes a post-only bid and ask
0.02 % around the last trade (cancel + two new orders) and reads its position, so the
matching engine fills it from the replayed flow FIFO. Everything runs in one process on
one core (the simulator's thread and the bot share the GIL).

Prints events/s, the replay speed as a multiple of real time (target >= 100x), the bot's
fills and the wall time split (file generation is not counted).

    .venv/bin/python bench/replay.py [--rows 1000000] [--chunk-s 10] [--file PATH]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import ccxt

from perpbot.client.loopback import configure_loopback
from perpbot.sim import SimConfig, start_in_thread
from perpbot.sim import replay_synth as synth

DAY_MS = 86_400_000
START_MS = 1_709_251_200_000  # 2024-03-01 00:00:00 UTC
SYMBOL = "BTC/USDT:USDT"


def make_day(path: Path, rows: int) -> Path:
    return synth.write(
        path, synth.AGG_HEADER, synth.agg_trades(42, START_MS, rows, 62000.0, DAY_MS)
    )


def run(path: Path, rows: int, chunk_s: int) -> None:
    cfg = SimConfig(
        seed=1,
        clock="manual",
        source={"kind": "replay", "files": [{"path": str(path)}]},
        market={"history_minutes": 60},
    )
    t0 = time.perf_counter()
    handle = start_in_thread(cfg, host="127.0.0.1", port=0)
    opened = time.perf_counter() - t0
    try:
        key, secret = handle.create_account(balance=1_000_000)
        ex = ccxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
        configure_loopback(ex, handle.base_url)
        ex.load_markets()
        engine = handle.server.engine
        market = engine.markets["BTCUSDT"]
        bot_s = 0.0
        requests = 0
        started = time.perf_counter()
        for _ in range(DAY_MS // (chunk_s * 1000)):
            handle.advance(chunk_s * 1000)
            b0 = time.perf_counter()
            last = float(ex.fetch_ticker(SYMBOL)["last"])
            ex.cancel_all_orders(SYMBOL)
            for side, px in (("buy", last * 0.9998), ("sell", last * 1.0002)):
                ex.create_order(SYMBOL, "limit", side, 0.01, px, {"timeInForce": "GTX"})
            ex.fetch_positions([SYMBOL])
            requests += 5
            bot_s += time.perf_counter() - b0
        wall = time.perf_counter() - started
        fills = ex.fetch_my_trades(SYMBOL, limit=1000)
        stats = handle.server.stats
        replayed = market.ticks_followed
    finally:
        handle.stop()
    sim_s = DAY_MS / 1000
    print(f"file: {path.name} ({rows:,} aggTrades rows, one simulated day)")
    print(f"engine start (reads the first row, seeds history): {opened:.2f} s")
    print(f"replayed events: {replayed:,} (tape: {market.trade_seq:,} prints)")
    print(f"wall time: {wall:.1f} s (bot's HTTP round trips: {bot_s:.1f} s, {requests:,} calls)")
    print(f"throughput: {replayed / wall:,.0f} events/s")
    print(f"speed: {sim_s / wall:,.0f}x real time (target >= 100x)")
    print(f"bot: {len(fills)} fills seen (last 1000 max), {stats.requests:,} requests served")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-s", type=int, default=10, help="simulated s per bot turn")
    parser.add_argument("--file", type=Path, help="replay this aggTrades file instead")
    args = parser.parse_args()
    if args.file is not None:
        run(args.file, args.rows, args.chunk_s)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "BTCUSDT-aggTrades-2024-03-01.zip"
        g0 = time.perf_counter()
        make_day(path, args.rows)
        print(f"generated {path.name} in {time.perf_counter() - g0:.1f} s")
        run(path, args.rows, args.chunk_s)


if __name__ == "__main__":
    main()
