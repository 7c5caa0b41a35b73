"""The public Python API, control endpoints, determinism, the wall clock and the CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.error import HTTPError

import pytest

from perpbot.sim import SimConfig, SimHandle, SimServer, start_in_thread
from perpbot.sim.config import MarketConfig

from .conftest import BTC, make_async, quiet_config

ROOT = Path(__file__).resolve().parents[2]


def _post(handle: SimHandle, path: str, body: dict) -> tuple[int, dict]:
    req = urllib.request.Request(
        handle.base_url + path, method="POST", data=json.dumps(body).encode()
    )
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.mark.asyncio
async def test_sim_server_inside_running_loop() -> None:
    server = SimServer(quiet_config())
    base_url = await server.start("127.0.0.1", 0)
    key, secret = server.create_account(balance=500)
    ex = make_async_for(base_url, key, secret)
    try:
        assert (await ex.fetch_balance())["USDT"]["total"] == 500
    finally:
        await ex.close()
        await server.stop()
        await server.stop()  # idempotent


def make_async_for(base_url: str, key: str, secret: str):
    import ccxt.async_support as accxt

    from perpbot.client.loopback import configure_loopback

    ex = accxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
    configure_loopback(ex, base_url)
    return ex


def test_control_endpoints(sim: SimHandle) -> None:
    status, created = _post(
        sim, "/__sim/accounts", {"balance": 250, "permissions": {"enableWithdrawals": True}}
    )
    assert status == 200 and len(created["api_key"]) == 64 and len(created["api_secret"]) == 64
    state = sim.state()
    acct = next(a for a in state["accounts"] if a["api_key"] == created["api_key"])
    assert acct["balances"]["USDT"]["wallet"] == "250.00000000"
    assert acct["permissions"]["enableWithdrawals"] is True
    assert "api_secret" not in json.dumps(state)
    assert _post(sim, "/__sim/accounts", {"permissions": {"bogus": True}})[0] == 400
    before = state["server_time"]
    status, advanced = _post(sim, "/__sim/advance", {"ms": 1500})
    assert status == 200 and advanced["server_time"] == before + 1500
    assert _post(sim, "/__sim/advance", {"ms": -1})[0] == 400
    status, limits = _post(sim, "/__sim/limits", {"weight_per_window": 50})
    assert status == 200 and limits["limits"]["weight_per_window"] == 50
    status, moved = _post(sim, "/__sim/market", {"jump": {"BTCUSDT": 1.0}})
    assert status == 200 and moved["markets"]["BTCUSDT"] == pytest.approx(60600)
    assert _post(sim, "/__sim/nope", {})[0] == 404
    with urllib.request.urlopen(sim.base_url + "/__sim/health", timeout=5) as resp:
        assert json.loads(resp.read())["ok"] is True
    for key in ("accounts", "open_orders", "orders", "trades", "counters", "liquidations"):
        assert key in state
    assert "/__sim/state" not in sim.state()["counters"]["per_path"]


def test_unknown_path_is_json_404(sim: SimHandle) -> None:
    with pytest.raises(HTTPError) as info:
        urllib.request.urlopen(sim.base_url + "/fapi/v1/nothingHere", timeout=5)
    assert info.value.code == 404
    assert json.loads(info.value.read())["code"] == -5000


@pytest.mark.asyncio
async def test_deterministic_for_a_seed() -> None:
    market = MarketConfig(volatility=0.0003, jump_rate=0.05, taker_rate=3.0, history_minutes=30)

    async def run() -> tuple:
        handle = start_in_thread(quiet_config(market=market, start_time_ms=1_760_000_000_000))
        try:
            ex = make_async(handle, *handle.create_account())
            try:
                await ex.load_markets()
                await ex.create_order(BTC, "limit", "buy", 0.5, 59990, {"clientOrderId": "a"})
                await ex.create_order(BTC, "limit", "sell", 0.5, 60010, {"clientOrderId": "b"})
                for _ in range(10):
                    handle.advance(1_000)
                book = await ex.fetch_order_book(BTC, 5)
                mark = (await ex.fetch_mark_price(BTC))["markPrice"]
            finally:
                await ex.close()
            state = handle.state()
            orders = [
                (o["clientOrderId"], o["status"], o["executedQty"], o["updateTime"])
                for o in state["orders"]
            ]
            trades = [(t["price"], t["qty"], t["time"]) for t in state["trades"]]
            return book["bids"], book["asks"], mark, orders, trades, state["markets"]
        finally:
            handle.stop()

    first, second = await run(), await run()
    assert first == second
    assert first[2] != 60000.0  # the market moved


@pytest.mark.asyncio
async def test_wall_clock_default_is_lively() -> None:
    handle = start_in_thread(SimConfig(seed=3))
    try:
        assert handle.state()["clock"] == "wall"
        first = handle.state()["markets"]["BTCUSDT"]["step"]
        time.sleep(0.5)
        assert handle.state()["markets"]["BTCUSDT"]["step"] > first  # the ticker task runs
    finally:
        handle.stop()
        handle.stop()


def _serve(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "perpbot", "sim", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
def test_cli_serve(sig: int, code: int) -> None:
    proc = _serve("--port", "0", "--seed", "5")
    try:
        assert proc.stdout is not None
        line = json.loads(proc.stdout.readline())
        assert set(line) == {"base_url", "api_key", "api_secret"}
        with urllib.request.urlopen(line["base_url"] + "/fapi/v1/time", timeout=5) as resp:
            assert "serverTime" in json.loads(resp.read())
        proc.send_signal(sig)
        assert proc.wait(timeout=10) == code
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()


def test_cli_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "sim.toml"
    bad.write_text("[limits]\nweight_per_window = -1\n")
    proc = _serve("--config", str(bad))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and out == ""
    assert err.strip().splitlines() == [
        "perpbot: error: sim.toml: [limits] weight_per_window: got -1, expected a positive integer"
    ]
