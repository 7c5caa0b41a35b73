"""The log as one layer of the client pipeline: real requests over HTTP to the simulator."""

from __future__ import annotations

import json
from typing import Any

import ccxt
import pytest

from perpbot.app.connect import connect
from perpbot.audit.keystore import KeyStore
from perpbot.audit.reader import iter_records
from perpbot.audit.signing import Verifier
from perpbot.audit.subscriber import attach_to_bus
from perpbot.audit.tree import verify_tree
from perpbot.client.request import OrderSpec
from perpbot.config import ExchangeSection
from perpbot.events import EventBus
from perpbot.paths import logs_dir

BTC = "BTC/USDT:USDT"


@pytest.fixture(autouse=True)
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    from keyring.backends import fail

    monkeypatch.setattr("keyring.core._keyring_backend", fail.Keyring())


async def test_requests_outcomes_and_refusals_are_recorded(
    sim: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, secret = sim.create_account(balance=1000.0)
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    bus = EventBus()
    audit = attach_to_bus(bus, run_id="pipeline-1", profile=None, command="run")
    conn = await connect(
        ExchangeSection(id="sim", url=sim.base_url), command="run", run_id="pipeline-1", bus=bus
    )
    try:
        ticker = await conn.client.fetch_ticker(BTC)
        spec = OrderSpec(
            symbol=BTC,
            side="buy",
            type="limit",
            amount=5.0,  # far beyond a 1000 USDT balance: the exchange refuses it
            price=round(float(ticker["last"]) * 0.97, 1),  # inside PERCENT_PRICE
            post_only=True,
            client_order_id="pb-audit-test-1",
        )
        with pytest.raises(ccxt.ExchangeError):
            await conn.client.create_order(spec)
    finally:
        await conn.close()
        audit.close()
    records = list(iter_records(logs_dir() / "pipeline-1"))
    calls = [r for r in records if r["kind"] == "exchange"]
    assert [c["method"] for c in calls][:2] == ["load_markets", "fetch_ticker"]
    ok = calls[1]
    assert ok["ok"] and ok["status"] == 200 and ok["http"] == "GET"
    assert ok["path"].startswith("/fapi/") and ok["latency_ms"] > 0
    assert any(k.startswith("x-mbx-used-weight") for k in ok["rate"])
    order = next(c for c in calls if c["method"] == "create_order")
    assert not order["ok"] and order["status"] == 400 and order["http"] == "POST"
    assert order["path"] == "/fapi/v1/order"
    assert order["err_class"] in ("InsufficientFunds", "InvalidOrder", "ExchangeError")
    assert isinstance(order["err_code"], int) and order["err_code"] < 0
    assert order["params"]["clientOrderId"] == "pb-audit-test-1"
    assert {order["params"][k] for k in ("side", "type", "symbol")} == {"buy", "limit", BTC}
    assert order["params"]["amount"] == 5.0 and order["params"]["postOnly"] is True
    after = records[records.index(order) + 1]
    assert after["kind"] == "checkpoint" and after["reason"] == "order"
    assert records[-1]["kind"] == "close"
    text = json.dumps(records)
    assert key not in text and secret not in text
    store = KeyStore()
    report = verify_tree(logs_dir(), verifier=Verifier(store.public_raw() or b""))
    assert report.ok, report.to_dict()
