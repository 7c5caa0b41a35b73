"""Wire conformance: the simulator's answer vs Binance's documented one, per behaviour.

Sources (each test names the page it follows):
- Filters (PERCENT_PRICE on the mark price, PRICE_FILTER):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/common-definition
- Error codes (-1100, -1101, -1131, -4013, -4016, -4024):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
- Signed endpoint security (timestamp, recvWindow, totalParams):
  https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
- Exchange information:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.request
from urllib.error import HTTPError

import ccxt
import pytest

from perpbot.sim import SimHandle

from .conftest import BTC

ORDER = {
    "symbol": "BTCUSDT",
    "side": "SELL",
    "type": "LIMIT",
    "timeInForce": "GTC",
    "quantity": "0.01",
}


def _send(
    handle: SimHandle, method: str, path: str, key: str, secret: str, payload: str, *, body: bool
) -> tuple[int, dict[str, object]]:
    sig = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    signed = f"{payload}&signature={sig}"
    url = handle.base_url + path + ("" if body else f"?{signed}")
    req = urllib.request.Request(url, data=signed.encode() if body else None, method=method)
    req.add_header("X-MBX-APIKEY", key)
    if body:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.asyncio
async def test_percent_price_is_enforced_on_the_mark(sim: SimHandle, client) -> None:
    """common-definition, PERCENT_PRICE: price <= mark x multiplierUp, >= mark x multiplierDown.

    Errors per error-code: -4016 "Limit price can't be higher than %s." and -4024 "Limit
    price can't be lower than %s."; the bounds are the advertised multipliers x mark.
    """
    info = await client.fapiPublicGetExchangeInfo()
    filt = next(f for f in info["symbols"][0]["filters"] if f["filterType"] == "PERCENT_PRICE")
    up, down = float(filt["multiplierUp"]), float(filt["multiplierDown"])
    mark = float(sim.state()["markets"]["BTCUSDT"]["mark"])
    with pytest.raises(ccxt.ExchangeError) as exc:
        await client.fapiPrivatePostOrder({**ORDER, "price": f"{mark * 3:.1f}"})
    assert '"code":-4016' in str(exc.value)
    assert f"Limit price can't be higher than {mark * up:.2f}." in str(exc.value)
    with pytest.raises(ccxt.ExchangeError) as exc:
        await client.fapiPrivatePostOrder({**ORDER, "side": "BUY", "price": f"{mark / 3:.1f}"})
    assert '"code":-4024' in str(exc.value)
    assert f"Limit price can't be lower than {mark * down:.2f}." in str(exc.value)
    # inside the band: accepted; a modify outside it is refused the same way
    order = await client.create_order(BTC, "limit", "sell", 0.01, round(mark * 1.04, 1))
    with pytest.raises(ccxt.ExchangeError) as exc:
        await client.edit_order(order["id"], BTC, "limit", "sell", 0.01, round(mark * 1.2, 1))
    assert '"code":-4016' in str(exc.value)
    state = sim.state()
    mine = [o for o in state["orders"] if o["symbol"] == "BTCUSDT"]
    assert [o["price"] for o in mine] == [f"{round(mark * 1.04, 1):.2f}"]  # nothing else


@pytest.mark.asyncio
async def test_price_below_min_price_is_4013(sim_factory) -> None:
    """error-code: -4013 PRICE_LESS_THAN_MIN_PRICE "Price less than min price."."""
    from perpbot.sim.config import SymbolConfig

    from .conftest import make_async, quiet_config

    cheap = SymbolConfig(
        symbol="PEPEUSDT",
        base_asset="PEPE",
        price=1.0,
        tick_size="0.0001",
        price_precision=4,
        step_size="1",
        min_qty="1",
        quantity_precision=0,
        min_price="0.9600",
        min_notional="5",
        percent_price_down="0.5000",
    )
    handle = sim_factory(quiet_config(symbols=[cheap]))
    key, secret = handle.create_account()
    ex = make_async(handle, key, secret)
    try:
        await ex.load_markets()
        with pytest.raises(ccxt.ExchangeError) as exc:
            await ex.fapiPrivatePostOrder(
                {**ORDER, "symbol": "PEPEUSDT", "side": "BUY", "quantity": "10", "price": "0.9"}
            )
        assert '"code":-4013' in str(exc.value) and "Price less than min price." in str(exc.value)
    finally:
        await ex.close()


def test_duplicate_parameters_answer_1101(sim: SimHandle) -> None:
    """error-code: -1101 "Duplicate values for a parameter detected."; nothing is placed.

    general-info: a parameter sent in both the query string and the body takes the
    query string's value (that is not a duplicate).
    """
    key, secret = sim.create_account()
    ts = int(time.time() * 1000)
    base = "&".join(f"{k}={v}" for k, v in ORDER.items()) + "&price=60500"
    status, body = _send(
        sim,
        "POST",
        "/fapi/v1/order",
        key,
        secret,
        f"{base}&quantity=0.02&timestamp={ts}",
        body=True,
    )
    assert status == 400 and body == {
        "code": -1101,
        "msg": "Duplicate values for a parameter detected.",
    }
    assert sim.state()["orders"] == []
    status, body = _send(
        sim,
        "GET",
        "/fapi/v1/openOrders",
        key,
        secret,
        f"symbol=BTCUSDT&symbol=ETHUSDT&timestamp={ts}",
        body=False,
    )
    assert status == 400 and body["code"] == -1101


def test_recv_window_errors_name_recv_window(sim: SimHandle) -> None:
    """error-code: -1100 names the malformed parameter; -1131 for a recvWindow over 60000."""
    key, secret = sim.create_account()
    ts = int(time.time() * 1000)
    status, body = _send(
        sim,
        "GET",
        "/fapi/v1/openOrders",
        key,
        secret,
        f"recvWindow=abc&timestamp={ts}",
        body=False,
    )
    assert status == 400 and body["code"] == -1100
    assert "'recvWindow'" in str(body["msg"]) and "timestamp" not in str(body["msg"])
    status, body = _send(
        sim,
        "GET",
        "/fapi/v1/openOrders",
        key,
        secret,
        f"recvWindow=70000&timestamp={ts}",
        body=False,
    )
    assert status == 400 and body == {"code": -1131, "msg": "recvWindow must be less than 60000."}
    status, body = _send(
        sim,
        "GET",
        "/fapi/v1/openOrders",
        key,
        secret,
        "recvWindow=5000&timestamp=12x",
        body=False,
    )
    assert status == 400 and "'timestamp'" in str(body["msg"])


@pytest.mark.asyncio
async def test_exchange_info_advertises_only_what_is_served(sim: SimHandle, client) -> None:
    """Exchange-Information: timeInForce / filters list what the venue accepts.

    GTD is served (goodTillDate, -5040; see test_conformance_gtd_price_match.py), so it is
    advertised as Binance does; MAX_NUM_ALGO_ORDERS is not (Binance dropped it with the
    Algo Order migration, Dec 2025).
    """
    info = await client.fapiPublicGetExchangeInfo()
    for sym in info["symbols"]:
        assert sym["timeInForce"] == ["GTC", "IOC", "FOK", "GTX", "GTD"]
        kinds = [f["filterType"] for f in sym["filters"]]
        assert "MAX_NUM_ALGO_ORDERS" not in kinds
        assert kinds == [
            "PRICE_FILTER",
            "LOT_SIZE",
            "MARKET_LOT_SIZE",
            "MAX_NUM_ORDERS",
            "MIN_NOTIONAL",
            "PERCENT_PRICE",
        ]
    for tif in info["symbols"][0]["timeInForce"]:
        params = {**ORDER, "side": "BUY", "price": "59000", "timeInForce": tif}
        if tif == "GTD":
            params["goodTillDate"] = str(info["serverTime"] + 3_600_000)
        try:
            await client.fapiPrivatePostOrder(params)
        except ccxt.ExchangeError as exc:  # FOK/IOC may expire, but never -1115
            assert "-1115" not in str(exc)
