"""SimConfig defaults and TOML errors; the shared Binance weight table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from perpbot.errors import BadInput
from perpbot.sim import SimConfig
from perpbot.weights import request_cost


def test_defaults_are_the_lively_paper_exchange() -> None:
    cfg = SimConfig()
    btc, eth = cfg.symbols
    assert (btc.symbol, btc.price, str(btc.tick_size), str(btc.step_size)) == (
        "BTCUSDT",
        60000.0,
        "0.10",
        "0.001",
    )
    assert str(btc.min_notional) == "100" and str(eth.min_notional) == "20"
    assert (eth.symbol, eth.price, str(eth.tick_size)) == ("ETHUSDT", 3000.0, "0.01")
    assert cfg.starting_balance == 10000 and cfg.default_leverage == 20
    assert (cfg.fees.maker, cfg.fees.taker) == (0.0002, 0.0005)
    assert cfg.funding.interval_s == 8 * 3600 and cfg.funding.rate is None  # issue 18: 8 h
    assert cfg.clock == "wall"
    lim = cfg.limits
    assert (lim.weight_per_window, lim.weight_window_s) == (2400, 60)
    assert (lim.orders_per_short_window, lim.short_window_s) == (300, 10)
    assert (lim.orders_per_long_window, lim.long_window_s) == (1200, 60)


def test_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(
        'seed = 9\nclock = "manual"\n[limits]\nweight_per_window = 1200\n'
        "weight_window_s = 10\n[faults.errors]\nrate = 0.1\nstatuses = [502]\n"
        '[[symbols]]\nsymbol = "SOLUSDT"\nbase_asset = "SOL"\nprice = 150.0\n'
        'tick_size = "0.01"\nmin_notional = "5"\n'
    )
    cfg = SimConfig.from_toml(path)
    assert cfg.seed == 9 and cfg.limits.weight_window_s == 10
    assert cfg.faults.errors.statuses == [502]
    assert [s.symbol for s in cfg.symbols] == ["SOLUSDT"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "[limits]\nweight_per_window = -1\n",
            "sim.toml: [limits] weight_per_window: got -1, expected a positive integer",
        ),
        (
            "[limits]\nweight_per_window = 'x'\n",
            "sim.toml: [limits] weight_per_window: got 'x', expected an integer",
        ),
        ("[limits]\nweight_per_windw = 5\n", "sim.toml: [limits] weight_per_windw: unknown key"),
        ("clock = 'fast'\n", "sim.toml: clock: got 'fast', expected one of 'wall' or 'manual'"),
        (
            "[[symbols]]\nsymbol = 'X'\nbase_asset = 'X'\n",
            "sim.toml: [[symbols]] #1 price: missing required key",
        ),
        (
            "[faults.errors]\nrate = 1.5\n",
            "sim.toml: [faults.errors] rate: got 1.5, expected a number <= 1.0",
        ),
        ("seed = \n", "sim.toml: not valid TOML"),
    ],
)
def test_bad_toml_gives_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sim.toml"
    path.write_text(text)
    with pytest.raises(BadInput) as info:
        SimConfig.from_toml(path)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(BadInput, match="cannot read"):
        SimConfig.from_toml(tmp_path / "nope.toml")


@pytest.mark.parametrize(
    ("method", "path", "params", "cost"),
    [
        ("GET", "/fapi/v1/exchangeInfo", {}, (1, 0)),
        ("GET", "/fapi/v1/ticker/24hr", {"symbol": "BTCUSDT"}, (1, 0)),
        ("GET", "/fapi/v1/ticker/24hr", {}, (40, 0)),
        ("GET", "/fapi/v1/ticker/price", {}, (2, 0)),
        ("GET", "/fapi/v1/ticker/bookTicker", {}, (5, 0)),
        ("GET", "/fapi/v1/ticker/bookTicker", {"symbol": "X"}, (2, 0)),
        ("GET", "/fapi/v1/depth", {"symbol": "X"}, (10, 0)),
        ("GET", "/fapi/v1/depth", {"limit": "5"}, (2, 0)),
        ("GET", "/fapi/v1/depth", {"limit": "50"}, (2, 0)),
        ("GET", "/fapi/v1/depth", {"limit": "100"}, (5, 0)),
        ("GET", "/fapi/v1/depth", {"limit": "500"}, (10, 0)),
        ("GET", "/fapi/v1/depth", {"limit": "1000"}, (20, 0)),
        ("GET", "/fapi/v1/klines", {}, (2, 0)),
        ("GET", "/fapi/v1/klines", {"limit": "99"}, (1, 0)),
        ("GET", "/fapi/v1/klines", {"limit": "100"}, (2, 0)),
        ("GET", "/fapi/v1/klines", {"limit": "1000"}, (5, 0)),
        ("GET", "/fapi/v1/klines", {"limit": "1500"}, (10, 0)),
        ("GET", "/fapi/v1/premiumIndex", {}, (10, 0)),
        ("GET", "/fapi/v3/account", {}, (5, 0)),
        ("GET", "/fapi/v2/positionRisk", {}, (5, 0)),
        ("POST", "/fapi/v1/order", {}, (0, 1)),
        ("PUT", "/fapi/v1/order", {}, (1, 1)),
        ("DELETE", "/fapi/v1/order", {}, (1, 0)),
        ("GET", "/fapi/v1/openOrders", {}, (40, 0)),
        ("GET", "/fapi/v1/openOrders", {"symbol": "X"}, (1, 0)),
        ("GET", "/fapi/v1/userTrades", {}, (5, 0)),
        ("GET", "/fapi/v1/income", {}, (30, 0)),
        ("POST", "/fapi/v1/countdownCancelAll", {}, (10, 0)),
        ("POST", "/fapi/v1/batchOrders", {"batchOrders": json.dumps([{}, {}, {}])}, (5, 3)),
        ("PUT", "/fapi/v1/batchOrders", {"batchOrders": json.dumps([{}])}, (5, 1)),
        ("DELETE", "/fapi/v1/batchOrders", {}, (1, 0)),
        ("GET", "/fapi/v1/symbolConfig", {}, (5, 0)),
        ("GET", "/sapi/v1/account/apiRestrictions", {}, (1, 0)),
        ("GET", "/fapi/v1/somethingNew", {}, (1, 0)),
        ("get", "http://127.0.0.1:1/fapi/v1/depth?x=1", {"limit": "1000"}, (20, 0)),
        ("GET", "/fapi/v1/depth/", {"limit": "1000"}, (20, 0)),
        ("GET", "https://fapi.binance.com/fapi/v1/openOrders#x", {}, (40, 0)),
        # a URL inside the query is not the request's path
        ("GET", "/fapi/v1/openOrders?next=http://127.0.0.1:1/fapi/v1/order", {}, (40, 0)),
        ("GET", "http://127.0.0.1:1", {}, (1, 0)),
    ],
)
def test_request_cost(
    method: str, path: str, params: dict[str, str], cost: tuple[int, int]
) -> None:
    assert request_cost(method, path, params) == cost
