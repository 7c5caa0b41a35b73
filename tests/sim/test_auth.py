"""Authentication: signature, timestamp window, unknown/missing keys, per-key permissions."""

from __future__ import annotations

import hashlib
import hmac
import time
import urllib.request
from urllib.error import HTTPError

import ccxt
import pytest

from perpbot.sim import SimHandle

from .conftest import make_async


def _raw(
    handle: SimHandle,
    method: str,
    path: str,
    query: str,
    key: str | None,
    body: bytes | None = None,
) -> tuple[int, str]:
    url = handle.base_url + path + (f"?{query}" if query else "")
    req = urllib.request.Request(url, data=body, method=method)
    if key:
        req.add_header("X-MBX-APIKEY", key)
    if body is not None:
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except HTTPError as exc:
        return exc.code, exc.read().decode()


def _signed(secret: str, payload: str) -> str:
    sig = hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
    return f"{payload}&signature={sig}"


@pytest.mark.asyncio
async def test_bad_signature(sim: SimHandle) -> None:
    key, _ = sim.create_account()
    ex = make_async(sim, key, "not-the-secret")
    try:
        await ex.load_markets()
        with pytest.raises(ccxt.AuthenticationError) as info:
            await ex.fetch_balance()
        assert "-1022" in str(info.value)
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_stale_and_future_timestamps(sim: SimHandle) -> None:
    key, secret = sim.create_account()
    ex = make_async(sim, key, secret)
    try:
        await ex.load_markets()
        ex.options["timeDifference"] = 20_000  # our clock 20 s behind: outside recvWindow
        with pytest.raises(ccxt.InvalidNonce) as info:
            await ex.fetch_balance()
        assert "-1021" in str(info.value) and "recvWindow" in str(info.value)
        ex.options["timeDifference"] = -2_000  # 2 s ahead of the server
        with pytest.raises(ccxt.InvalidNonce) as info:
            await ex.fetch_balance()
        assert "ahead of the server" in str(info.value)
        ex.options["timeDifference"] = 0
        assert (await ex.fetch_balance())["USDT"]["total"] == 10000.0
    finally:
        await ex.close()


@pytest.mark.asyncio
async def test_unknown_and_missing_keys(sim: SimHandle) -> None:
    ex = make_async(sim, "f" * 64, "secret")
    try:
        await ex.load_markets()
        with pytest.raises(ccxt.AuthenticationError) as info:
            await ex.fetch_balance()
        assert "-2015" in str(info.value)
    finally:
        await ex.close()
    status, body = _raw(
        sim, "GET", "/fapi/v3/account", f"timestamp={int(time.time() * 1000)}", None
    )
    assert status == 401 and '"code":-2014' in body


def test_signature_over_raw_bytes(sim: SimHandle) -> None:
    key, secret = sim.create_account()
    ts = int(time.time() * 1000)
    payload = f"timestamp={ts}&symbol=BTCUSDT&recvWindow=5000"
    status, body = _raw(sim, "GET", "/fapi/v1/openOrders", _signed(secret, payload), key)
    assert (status, body) == (200, "[]")
    # same parameters, different byte order: the signature no longer matches those bytes
    reordered = f"symbol=BTCUSDT&timestamp={ts}&recvWindow=5000"
    signed = _signed(secret, payload).replace(payload, reordered)
    status, body = _raw(sim, "GET", "/fapi/v1/openOrders", signed, key)
    assert status == 400 and '"code":-1022' in body
    # POST: the body is what is signed
    order = (
        f"timestamp={ts}&symbol=BTCUSDT&side=BUY&type=LIMIT&quantity=0.01"
        f"&price=59000&timeInForce=GTC&recvWindow=5000"
    )
    status, body = _raw(sim, "POST", "/fapi/v1/order", "", key, _signed(secret, order).encode())
    assert status == 200 and '"status":"NEW"' in body
    status, body = _raw(sim, "POST", "/fapi/v1/order", "", key, order.encode())
    assert status == 400 and '"code":-1102' in body and "signature" in body
