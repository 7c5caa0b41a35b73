"""Read Binance's public market-data files (data.binance.vision) as a stream of ticks.

The USD-M futures files, exactly as published (daily or monthly, ``.csv`` or the ``.zip``
holding one ``.csv``; older files have no header row, newer ones start with one):

* ``aggTrades``: ``agg_trade_id,price,quantity,first_trade_id,last_trade_id,transact_time,
  is_buyer_maker`` -> one trade tick per row (the taker bought when the buyer was not the
  maker);
* ``bookTicker``: ``update_id,best_bid_price,best_bid_qty,best_ask_price,best_ask_qty,
  transaction_time,event_time`` -> one price tick (the mid) per row;
* ``klines`` and ``markPriceKlines``: ``open_time,open,high,low,close,volume,close_time,
  quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore`` -> four price ticks
  per candle: open at its open time, then the two extremes (low first on an up candle, high
  first on a down one) and the close at its close time.

Timestamps in microseconds (Binance's spot files since 2025) are brought back to
milliseconds. A file's kind and symbol come from its name as Binance publishes it
(``BTCUSDT-aggTrades-2024-03-01.zip``, ``BTCUSDT-1m-2024-03.zip``); a kline file is a
mark-price one when it sits in a ``markPriceKlines`` folder, or when the config says so.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from perpbot.errors import BadInput

KINDS = ("aggTrades", "bookTicker", "klines", "markPriceKlines")
_INTERVAL = re.compile(r"^\d+[smhdwM]$")
_MICROS = 10**14  # a millisecond epoch stays below this until the year 5138


@dataclass(slots=True)
class Tick:
    """One replayed event: a trade (``qty`` > 0) or a new price (``qty`` == 0)."""

    t: int
    price: float
    qty: float = 0.0
    taker_buys: bool = False


def infer(path: Path) -> tuple[str, str]:
    """(symbol, kind) from Binance's file naming; BadInput if the name says neither."""
    stem = path.name.split(".")[0]
    parts = stem.split("-")
    if len(parts) < 3 or not parts[0].isalnum():
        raise BadInput(
            f"{path.name}: not a Binance data file name (SYMBOL-aggTrades-DATE.zip,"
            " SYMBOL-bookTicker-DATE.zip, SYMBOL-1m-DATE.zip); give kind and symbol"
        )
    symbol, what = parts[0].upper(), parts[1]
    if what in ("aggTrades", "bookTicker"):
        return symbol, what
    if _INTERVAL.match(what):
        kind = "markPriceKlines" if "markPriceKlines" in path.parts else "klines"
        return symbol, kind
    raise BadInput(f"{path.name}: {what!r} files are not replayable (use one of {KINDS})")


def _lines(path: Path) -> Iterator[str]:
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if n.endswith(".csv")]
            if len(members) != 1:
                raise BadInput(f"{path.name}: expected one .csv inside, found {len(members)}")
            with zf.open(members[0]) as raw:
                yield from io.TextIOWrapper(raw, encoding="ascii", newline="")
        return
    with path.open(encoding="ascii", newline="") as fh:
        yield from fh


def _ms(value: str) -> int:
    t = int(value)
    return t // 1000 if t >= _MICROS else t


def read(path: Path, kind: str) -> Iterator[Tick]:
    """The file's ticks in file order; a malformed row is one BadInput line naming it."""
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    rows = csv.reader(_lines(path))
    line = 0
    try:
        for line, row in enumerate(rows, start=1):
            if not row or (line == 1 and not row[0].strip().isdigit()):
                continue  # the header row (files published since 2022 have one)
            yield from _ticks(kind, row)
    except (ValueError, IndexError):
        raise BadInput(f"{path.name}: line {line} is not a {kind} row") from None
    except (zipfile.BadZipFile, UnicodeDecodeError):
        raise BadInput(f"{path.name}: not a Binance CSV or zip file") from None


def _ticks(kind: str, row: list[str]) -> Iterator[Tick]:
    if kind == "aggTrades":
        buyer_maker = row[6].strip().lower() == "true"
        yield Tick(_ms(row[5]), float(row[1]), float(row[2]), not buyer_maker)
    elif kind == "bookTicker":
        yield Tick(_ms(row[5]), (float(row[1]) + float(row[3])) / 2)
    else:
        start, end = _ms(row[0]), _ms(row[6])
        o, h, low, c = (float(x) for x in row[1:5])
        first, second = (low, h) if c >= o else (h, low)
        third = start + (end - start) * 2 // 3
        yield Tick(start, o)
        yield Tick(start + (end - start) // 3, first)
        yield Tick(third, second)
        yield Tick(end, c)
