"""The replay source: Binance's public files drive the simulator's market.

Fixtures: tests/fixtures/replay (README.md there: generated in the exact published format).
Real files: https://data.binance.vision/?prefix=data/futures/um/ (docs/simulator.md).
"""

from __future__ import annotations

import asyncio
import csv
import json
import shutil
import signal
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest

from perpbot.errors import BadInput
from perpbot.sim.assemble import build_engine
from perpbot.sim.config import SimConfig
from perpbot.sim.replay_files import infer, read
from tests.conftest import ROOT, run_cli
from tests.fixtures.replay.generate import START_MS, fixtures
from tests.sim.conftest import BTC, make_sync, quiet_config, quiet_market
from tests.sim.test_api import _serve
from tests.sim.ws_support import make_pro

REPLAY = Path(__file__).resolve().parents[1] / "fixtures" / "replay"
AGG = REPLAY / "BTCUSDT-aggTrades-2024-03-01.csv"
AGG_ZIP = REPLAY / "zipped" / "BTCUSDT-aggTrades-2024-03-01.zip"
BOOK = REPLAY / "BTCUSDT-bookTicker-2024-03-01.csv"
KLINES = REPLAY / "BTCUSDT-1m-2024-03-01.csv"
MARK = REPLAY / "markPriceKlines" / "BTCUSDT-1m-2024-03-01.zip"


def _csv_text(path: Path) -> str:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            return zf.read(zf.namelist()[0]).decode()
    return path.read_text()


def _rows(path: Path) -> list[list[str]]:
    rows = list(csv.reader(_csv_text(path).splitlines()))
    return rows[1:] if not rows[0][0].isdigit() else rows


def replay_config(*files: Path, **overrides: object) -> SimConfig:
    source = {"kind": "replay", "files": [{"path": str(f)} for f in files]}
    return quiet_config(source=source, **overrides)


def test_committed_fixtures_are_what_the_generator_writes(tmp_path: Path) -> None:
    for fresh in fixtures(tmp_path):
        committed = REPLAY / fresh.relative_to(tmp_path)
        assert _csv_text(committed) == _csv_text(fresh), committed.name


def test_names_say_symbol_and_kind() -> None:
    assert infer(AGG) == ("BTCUSDT", "aggTrades")
    assert infer(BOOK) == ("BTCUSDT", "bookTicker")
    assert infer(KLINES) == ("BTCUSDT", "klines")
    assert infer(MARK) == ("BTCUSDT", "markPriceKlines")
    assert infer(Path("ETHUSDT-aggTrades-2024-03.zip")) == ("ETHUSDT", "aggTrades")
    with pytest.raises(BadInput, match="not replayable"):
        infer(Path("BTCUSDT-metrics-2024-03-01.zip"))
    with pytest.raises(BadInput, match="not a Binance data file name"):
        infer(Path("prices.csv"))


def test_header_or_not_zipped_or_not_same_ticks() -> None:
    plain = list(read(AGG, "aggTrades"))
    zipped = list(read(AGG_ZIP, "aggTrades"))
    assert plain == zipped and len(plain) == 600
    first = _rows(AGG)[0]
    assert plain[0].t == int(first[5]) and plain[0].price == float(first[1])
    assert plain[0].qty == float(first[2])
    assert plain[0].taker_buys is (first[6] == "false")  # the buyer was the maker: a sell


def test_klines_become_four_ticks_in_candle_order() -> None:
    ticks = list(read(KLINES, "klines"))
    rows = _rows(KLINES)
    assert len(ticks) == 4 * len(rows)
    o, h, low, c = (float(x) for x in rows[0][1:5])
    assert [t.price for t in ticks[:4]] in ([o, low, h, c], [o, h, low, c])
    assert ticks[0].t == int(rows[0][0]) and ticks[3].t == int(rows[0][6])
    assert all(t.qty == 0 for t in ticks)


def test_microsecond_timestamps_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "BTCUSDT-aggTrades-2025-02-01.csv"
    path.write_text("1,62000.1,0.010,1,1,1738368000000123,false\n1,x,0.01,1,1,1,true\n")
    ticks = read(path, "aggTrades")
    assert next(ticks).t == 1_738_368_000_000
    with pytest.raises(BadInput, match="line 2 is not a aggTrades row"):
        next(ticks)


def test_unknown_symbol_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "XRPUSDT-aggTrades-2024-03-01.csv"
    path.write_text("1,0.6,10,1,1,1709251200000,true\n")
    with pytest.raises(BadInput, match="XRPUSDT is not in the simulator's symbols"):
        build_engine(replay_config(path))


def test_replayed_trades_are_the_public_tape_and_the_clock_follows(sim_factory) -> None:
    """/fapi/v1/aggTrades (via ccxt) shows the file's trades, at the file's times."""
    sim = sim_factory(replay_config(AGG))
    ex = make_sync(sim)
    assert ex.fetch_time() == START_MS  # the clock starts at the first event
    sim.advance(120_000)
    trades = ex.fetch_trades(BTC, limit=1000)
    rows = [r for r in _rows(AGG) if int(r[5]) <= START_MS + 120_000]
    assert len(trades) == len(rows) > 50
    for got, row in zip(trades, rows, strict=True):
        assert got["timestamp"] == int(row[5])
        assert got["price"] == float(row[1])
        assert got["amount"] == pytest.approx(float(row[2]))
        assert got["side"] == ("sell" if row[6] == "true" else "buy")
    last = ex.fetch_ticker(BTC)["last"]
    assert last == float(rows[-1][1])


def test_a_resting_order_fills_from_replayed_flow_at_its_price(sim_factory) -> None:
    """An order away from the market waits until the replayed flow trades to it, then
    fills at its own price as maker; never from trades printed on the wrong side of it."""
    rows = _rows(AGG)
    start = float(rows[0][1])
    prices = [float(r[1]) for r in rows]
    up = max(prices) - start > start - min(prices)
    side, target = ("sell", max(prices) - 5.0) if up else ("buy", min(prices) + 5.0)
    assert abs(target - start) > 20  # the file trades well away from the start
    sim = sim_factory(replay_config(AGG))
    key, secret = sim.create_account()
    ex = make_sync(sim, key, secret)
    ex.load_markets()
    order = ex.create_order(BTC, "limit", side, 0.002, target, {"timeInForce": "GTC"})
    sim.advance(600_000)
    got = ex.fetch_order(order["id"], BTC)
    assert got["status"] == "closed" and got["average"] == target
    fills = ex.fetch_my_trades(BTC)
    assert fills and all(f["price"] == target and f["takerOrMaker"] == "maker" for f in fills)
    first_fill = min(f["timestamp"] for f in fills)
    reached = min(
        int(r[5]) for r in rows if (float(r[1]) >= target if up else float(r[1]) <= target)
    )
    assert first_fill >= reached  # not before the market traded to it


def test_book_ticker_replay_moves_the_book(sim_factory) -> None:
    sim = sim_factory(replay_config(BOOK))
    ex = make_sync(sim)
    rows = _rows(BOOK)
    sim.advance(30_000)
    last = [r for r in rows if int(r[5]) <= START_MS + 30_000][-1]
    mid = (float(last[1]) + float(last[3])) / 2
    book = ex.fetch_order_book(BTC, 5)
    assert book["bids"][0][0] <= mid <= book["asks"][0][0]
    assert book["asks"][0][0] - book["bids"][0][0] <= 0.2


def test_kline_replay_reproduces_the_candles(sim_factory) -> None:
    sim = sim_factory(replay_config(KLINES, market=quiet_market(history_minutes=0)))
    ex = make_sync(sim)
    sim.advance(10 * 60_000 + 1_000)
    got = ex.fetch_ohlcv(BTC, "1m", since=START_MS, limit=10)
    for candle, row in zip(got, _rows(KLINES)[:10], strict=True):
        assert candle[0] == int(row[0])
        assert candle[1:5] == [float(x) for x in row[1:5]]


def test_mark_price_kline_file_drives_the_price(sim_factory) -> None:
    sim = sim_factory(replay_config(MARK))
    ex = make_sync(sim)
    sim.advance(5 * 60_000 + 1_000)
    rows = _rows(MARK)
    close = float(rows[4][4])  # the 5th candle's close tick lands at its close time
    book = ex.fetch_order_book(BTC, 5)
    assert book["bids"][0][0] <= close <= book["asks"][0][0]


def test_wall_clock_replay_at_speed_follows_the_file(sim_factory) -> None:
    sim = sim_factory(replay_config(AGG, clock="wall", clock_speed=600.0))
    ex = make_sync(sim)
    t0 = ex.fetch_time()
    assert START_MS <= t0 < START_MS + 600_000  # 600x: the 10 min file lasts ~1 s
    deadline = time.monotonic() + 30
    while ex.fetch_time() < t0 + 60_000 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(ex.fetch_trades(BTC, limit=1000)) > 0


def test_cli_serve_replay_at_speed() -> None:
    proc = _serve("--port", "0", "--replay", str(AGG), "--speed", "100")
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        with urllib.request.urlopen(line["base_url"] + "/fapi/v1/time", timeout=5) as resp:
            now = json.loads(resp.read())["serverTime"]
        assert START_MS <= now < START_MS + 600_000  # the clock follows the file
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--live", "binanceusdm"], "--live: got 'binanceusdm', expected EXCHANGE:SYMBOL"),
        (["--live", "binanceusdm:XRP/USDT:USDT"], "--live: XRPUSDT not in the simulator's"),
        (["--replay", "nowhere/BTCUSDT-aggTrades-2024-03-01.zip"], "no such file"),
        (["--speed", "0"], "--speed: got 0.0, expected a number > 0"),
    ],
)
def test_cli_bad_source_options_are_one_line(args: list[str], message: str) -> None:
    proc = _serve(*args)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err


def test_toml_source_section_with_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    shutil.copy(AGG_ZIP, tmp_path / "data" / AGG_ZIP.name)
    toml = tmp_path / "sim.toml"
    toml.write_text(
        'clock = "manual"\n[source]\nkind = "replay"\n'
        '[[source.files]]\npath = "data/BTCUSDT-aggTrades-2024-03-01.zip"\n'
    )
    engine = build_engine(SimConfig.from_toml(toml))
    assert engine.clock.now_ms() == START_MS
    engine.clock.advance(900_000)
    engine.sync()
    assert engine.markets["BTCUSDT"].trade_seq == 600
    toml.write_text('[source]\nkind = "replay"\n')
    with pytest.raises(BadInput, match=r"sim.toml: source: .*kind = 'replay' needs at least"):
        SimConfig.from_toml(toml)


def test_tape_survives_a_price_freeze_and_a_bot_trading_through_it(sim_factory) -> None:
    """Adversarial: a frozen feed (fault) and a bot taking liquidity mid-replay neither lose
    nor duplicate nor reorder a replayed trade; the bot's own prints come on top."""
    sim = sim_factory(replay_config(AGG))
    key, secret = sim.create_account()
    ex = make_sync(sim, key, secret)
    ex.load_markets()
    sim.advance(100_000)
    sim.set_faults({"freeze_prices": True})
    sim.advance(200_000)  # frozen: the file's trades wait
    frozen_tape = len(ex.fetch_trades(BTC, limit=1000))
    ex.create_order(BTC, "market", "buy", 0.5)  # the bot sweeps the book while frozen
    sim.set_faults({})
    sim.advance(400_000)
    ex.create_order(BTC, "market", "sell", 0.5)
    tape = ex.fetch_trades(BTC, limit=1000)
    mine = [(t["timestamp"], t["price"], t["amount"]) for t in ex.fetch_my_trades(BTC)]
    assert len(mine) >= 2 and frozen_tape < 600
    replayed = []
    for t in tape:  # the bot's own prints (same time, price and size as its fills) aside
        print_ = (t["timestamp"], t["price"], t["amount"])
        if print_ in mine:
            mine.remove(print_)
        else:
            replayed.append(t)
    assert mine == []
    rows = [r for r in _rows(AGG) if int(r[5]) <= START_MS + 700_000]
    got = [(t["price"], t["amount"], t["side"]) for t in replayed]
    want = [(float(r[1]), float(r[2]), "sell" if r[6] == "true" else "buy") for r in rows]
    assert got == want


@pytest.mark.parametrize("shift", [True, False], ids=["shifted-to-now", "file-clock-polling"])
def test_perpbot_run_paper_trades_on_replayed_history(tmp_path: Path, shift: bool) -> None:
    """`perpbot run` with `[sim] config` naming a replay sim.toml: the example grid trades
    the file's prices through the usual HTTP/WebSocket path, 60x accelerated.

    shifted-to-now: the file's times moved to today (shift_to_now). file-clock: the
    exchange's clock is the file's own (2024-03-01), years behind this machine's, and the
    run polls REST (no user stream brings fills): it still records every fill, because it
    asks for fills from its start on the exchange's clock (its server time at connect),
    not on this machine's."""
    text = (ROOT / "strategies" / "grid.toml").read_text()
    if not shift:
        text = text.replace('id = "sim"', 'id = "sim"\nstreams = false')
    (tmp_path / "grid.py").write_text((ROOT / "strategies" / "grid.py").read_text())
    (tmp_path / "grid.toml").write_text(text.replace("seed = 42", 'seed = 42\nconfig = "sim.toml"'))
    (tmp_path / "sim.toml").write_text(
        f'clock_speed = 60.0\n[source]\nkind = "replay"\nshift_to_now = {str(shift).lower()}\n'
        f'[[source.files]]\npath = "{AGG.as_posix()}"\n'
    )
    result = run_cli("run", str(tmp_path / "grid.toml"), "--duration", "8", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["orders"]["placed"] > 0 and summary["fills"] > 0
    prices = [float(r[1]) for r in _rows(AGG)]
    lines = (Path(summary["run_dir"]) / "fills.jsonl").read_text().splitlines()
    fills = [json.loads(line) for line in lines]
    assert len(fills) == summary["fills"]
    assert all(min(prices) - 50 <= f["price"] <= max(prices) + 50 for f in fills)
    on_file_day = [START_MS <= _epoch_ms(f["ts"]) < START_MS + 86_400_000 for f in fills]
    assert all(on_file_day) if not shift else not any(on_file_day)


def _epoch_ms(ts: float) -> float:
    return ts if ts > 1e11 else ts * 1000.0


async def test_replayed_trades_stream_over_websocket(sim_factory) -> None:
    """ccxt.pro's watch_trades on a replay sim hears the file's trades, in order, with the
    file's timestamps (the WebSocket path a live bot uses)."""
    sim = sim_factory(replay_config(AGG))
    pro = make_pro(sim)
    try:
        await pro.load_markets()
        first = asyncio.create_task(pro.watch_trades(BTC))
        await asyncio.sleep(0.3)  # subscribed before the clock moves
        sim.advance(60_000)
        want = [r for r in _rows(AGG) if int(r[5]) <= START_MS + 60_000]
        await asyncio.wait_for(first, 5)
        deadline = asyncio.get_running_loop().time() + 10
        while len(pro.trades.get(BTC) or []) < len(want):  # ccxt.pro's trade cache
            assert asyncio.get_running_loop().time() < deadline, len(pro.trades[BTC])
            await asyncio.sleep(0.05)
        seen = list(pro.trades[BTC])
        got = [(t["timestamp"], t["price"], t["amount"], t["side"]) for t in seen]
        assert got == [
            (int(r[5]), float(r[1]), float(r[2]), "sell" if r[6] == "true" else "buy") for r in want
        ]
    finally:
        await pro.close()


def test_symbols_without_a_file_keep_their_random_walk() -> None:
    cfg = SimConfig(clock="manual", source={"kind": "replay", "files": [{"path": str(AGG)}]})
    engine = build_engine(cfg)
    eth_before = engine.markets["ETHUSDT"].mid
    engine.clock.advance(900_000)
    engine.sync()
    assert engine.markets["ETHUSDT"].mid != eth_before  # walks, with its synthetic takers
    assert engine.markets["ETHUSDT"].trade_seq > 0
    assert engine.markets["BTCUSDT"].trade_seq == 600  # the file's trades, no synthetic ones
