"""Write synthetic market-data files in Binance's exact published formats.

For tests and benchmarks of the replay source: the committed fixtures under
tests/fixtures/replay/ and bench/replay.py's day of aggTrades come from here. The formats
(columns, header row, number formatting, ``true``/``false``, the zip holding one CSV named
like the zip) follow the USD-M files on data.binance.vision (see replay_files.py).
"""

from __future__ import annotations

import math
import random
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path

AGG_HEADER = "agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,is_buyer_maker"
BOOK_HEADER = (
    "update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,transaction_time,event_time"
)
KLINE_HEADER = (
    "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
    "taker_buy_quote_volume,ignore"
)
MINUTE_MS = 60_000


def _walk(rng: random.Random, price: float, vol: float) -> float:
    return price * math.exp(vol * rng.gauss(0.0, 1.0))


def agg_trades(
    seed: int, start_ms: int, rows: int, price: float, span_ms: int = 86_400_000
) -> Iterator[str]:
    """``rows`` aggTrades rows spread over ``span_ms`` (a random walk, tick 0.1)."""
    rng = random.Random(seed)
    gap = span_ms / rows
    trade_id = 3_000_000_000
    t = float(start_ms)
    for i in range(rows):
        price = _walk(rng, price, 0.00005)
        n = 1 + int(rng.expovariate(0.7))
        qty = max(0.001, round(rng.expovariate(1 / 0.08), 3))
        yield (
            f"{1_900_000_000 + i},{price:.1f},{qty:.3f},{trade_id},{trade_id + n - 1},"
            f"{int(t)},{'true' if rng.random() < 0.5 else 'false'}"
        )
        trade_id += n
        t += gap * rng.uniform(0.2, 1.8)


def book_ticker(seed: int, start_ms: int, rows: int, price: float) -> Iterator[str]:
    rng = random.Random(seed)
    t = start_ms
    for i in range(rows):
        price = _walk(rng, price, 0.00004)
        bid = round(price, 1)
        t += rng.randint(1, 400)
        yield (
            f"{4_000_000_000_000 + i * 7},{bid:.1f},{rng.uniform(0.002, 9):.3f},"
            f"{bid + 0.1:.1f},{rng.uniform(0.002, 9):.3f},{t},{t + rng.randint(1, 9)}"
        )


def klines(seed: int, start_ms: int, rows: int, price: float, *, mark: bool) -> Iterator[str]:
    """1m klines; mark-price klines carry zero volumes, as Binance publishes them."""
    rng = random.Random(seed)
    for i in range(rows):
        open_ms = start_ms + i * MINUTE_MS
        o = price
        c = _walk(rng, o, 0.0008)
        h = max(o, c) * (1 + abs(rng.gauss(0, 0.0003)))
        low = min(o, c) * (1 - abs(rng.gauss(0, 0.0003)))
        price = c
        if mark:
            vols = f"0,{open_ms + MINUTE_MS - 1},0,{60},0,0,0"
        else:
            vol = rng.uniform(20, 400)
            buy = vol * rng.uniform(0.3, 0.7)
            mid = (o + c) / 2
            vols = (
                f"{vol:.3f},{open_ms + MINUTE_MS - 1},{vol * mid:.5f},{rng.randint(300, 5000)},"
                f"{buy:.3f},{buy * mid:.5f},0"
            )
        yield f"{open_ms},{o:.1f},{h:.1f},{low:.1f},{c:.1f},{vols}"


def write(path: Path, header: str | None, rows: Iterable[str]) -> Path:
    """Write ``rows`` as Binance does: a CSV, or a .zip holding one CSV of the same name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text_rows = ([header] if header else []) + list(rows)
    body = "\n".join(text_rows) + "\n"
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            info = zipfile.ZipInfo(path.with_suffix(".csv").name, date_time=(2024, 3, 2, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, body)
    else:
        path.write_text(body, encoding="ascii")
    return path
