"""Kline conformance: mark price, index price and continuous-contract klines.

Each test cites the Binance page it checks the simulator's answer against:
- Mark Price Kline/Candlestick Data, GET /fapi/v1/markPriceKlines (symbol, interval,
  startTime, endTime, limit default 500 max 1500; rows of 12: open time, o, h, l, c,
  "0" ignore, close time, "0", count of basic data, "0", "0", "0"):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Mark-Price-Kline-Candlestick-Data
- Index Price Kline/Candlestick Data, GET /fapi/v1/indexPriceKlines (pair instead of
  symbol; same row shape):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Index-Price-Kline-Candlestick-Data
- Continuous Contract Kline/Candlestick Data, GET /fapi/v1/continuousKlines (pair,
  contractType PERPETUAL | CURRENT_QUARTER | NEXT_QUARTER | TRADIFI_PERPETUAL, interval;
  rows as /fapi/v1/klines: volumes, quote volume, trade count, taker buy volumes):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Continuous-Contract-Kline-Candlestick-Data
Weights for all three: by limit as klines, [1,100) 1, [100,500) 2, [500,1000] 5, >1000 10.
"""

from __future__ import annotations

import ccxt
import pytest

from perpbot.weights import request_cost

from .conftest import make_sync, quiet_config, quiet_market


def _price_rows_ok(rows: list[list], interval_ms: int) -> None:
    for row in rows:
        assert len(row) == 12
        assert isinstance(row[0], int) and row[6] == row[0] + interval_ms - 1
        assert all(isinstance(x, str) and float(x) > 0 for x in row[1:5])
        assert float(row[2]) >= max(float(row[1]), float(row[4]))
        assert float(row[3]) <= min(float(row[1]), float(row[4]))
        assert row[5] == "0" and row[7] == "0" and row[9:] == ["0", "0", "0"]
        assert isinstance(row[8], int)  # the number of basic data (mark/index samples)


@pytest.fixture
def ex(sim_factory):
    sim = sim_factory(quiet_config(market=quiet_market(premium_vol=0.002, tick_ms=1000)))
    sim.advance(10 * 60_000)
    return make_sync(sim)


def test_mark_price_klines(ex) -> None:
    """Mark-Price-Kline-Candlestick-Data: shape, limit, startTime and the mandatory params."""
    rows = ex.fapiPublicGetMarkPriceKlines({"symbol": "BTCUSDT", "interval": "1m", "limit": 5})
    assert len(rows) == 5
    _price_rows_ok(rows, 60_000)
    assert rows[-1][8] > 0
    since = ex.fapiPublicGetMarkPriceKlines(
        {"symbol": "BTCUSDT", "interval": "5m", "startTime": rows[0][0], "limit": 2}
    )
    _price_rows_ok(since, 300_000)
    assert since[0][0] <= rows[0][0] < since[0][6]
    with pytest.raises(ccxt.BadRequest, match="-1102"):
        ex.fapiPublicGetMarkPriceKlines({"symbol": "BTCUSDT"})
    with pytest.raises(ccxt.BadSymbol):
        ex.fapiPublicGetMarkPriceKlines({"symbol": "NOPEUSDT", "interval": "1m"})
    assert request_cost("GET", "/fapi/v1/markPriceKlines", {"limit": "1500"})[0] == 10


def test_index_price_klines(ex) -> None:
    """Index-Price-Kline-Candlestick-Data: keyed by pair; the index's own series."""
    rows = ex.fapiPublicGetIndexPriceKlines({"pair": "BTCUSDT", "interval": "1m", "limit": 5})
    assert len(rows) == 5
    _price_rows_ok(rows, 60_000)
    mark = ex.fapiPublicGetMarkPriceKlines({"symbol": "BTCUSDT", "interval": "1m", "limit": 5})
    assert [r[0] for r in rows] == [r[0] for r in mark]
    assert any(r[4] != m[4] for r, m in zip(rows, mark, strict=True))  # not the mark's
    with pytest.raises(ccxt.BadRequest, match="pair"):
        ex.fapiPublicGetIndexPriceKlines({"symbol": "BTCUSDT", "interval": "1m"})
    assert request_cost("GET", "/fapi/v1/indexPriceKlines", {"limit": "99"})[0] == 1


def test_continuous_klines(ex) -> None:
    """Continuous-Contract-Kline-Candlestick-Data: PERPETUAL is the perpetual's klines."""
    params = {"pair": "BTCUSDT", "interval": "1m", "limit": 5}
    rows = ex.fapiPublicGetContinuousKlines({**params, "contractType": "PERPETUAL"})
    plain = ex.fapiPublicGetKlines({"symbol": "BTCUSDT", "interval": "1m", "limit": 5})
    assert rows == plain and len(rows) == 5
    for row in rows:
        assert len(row) == 12 and isinstance(row[8], int) and row[11] == "0"
        assert all(isinstance(x, str) for x in (*row[1:6], row[7], row[9], row[10]))
    with pytest.raises(ccxt.BadRequest, match="contractType"):
        ex.fapiPublicGetContinuousKlines(params)
    with pytest.raises(ccxt.BadRequest, match="contractType"):
        ex.fapiPublicGetContinuousKlines({**params, "contractType": "WEEKLY"})
    with pytest.raises(ccxt.BadSymbol):  # no quarterly contracts listed: -1121
        ex.fapiPublicGetContinuousKlines({**params, "contractType": "CURRENT_QUARTER"})
    assert request_cost("GET", "/fapi/v1/continuousKlines", {"limit": "500"})[0] == 5
