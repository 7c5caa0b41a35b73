"""Records: canonical lines, the chain hash, and redaction by allow-list."""

from __future__ import annotations

import hashlib
import json
import math

import pytest

from perpbot.audit.canonical import canonical, decode, encode, is_canonical, line_hash, prefix
from perpbot.audit.records import (
    DECISION_FIELDS,
    RecordContext,
    decision_body,
    event_body,
    exchange_body,
    fill_body,
    is_order_related,
    order_body,
)
from perpbot.events import Decision, ExchangeCall

CTX = RecordContext(run="r1", profile="main", command="run")
SECRET = "S3cr3t-9f8e7d6c5b4a"
KEY = "K3y-0123456789abcdef"


def test_line_layout_puts_chain_fields_first_and_sorts_the_rest() -> None:
    line = encode(7, "ab" * 32, {"z": 1, "a": {"y": 2, "b": 1.5}, "m": "é"})
    assert line.startswith(prefix(7, "ab" * 32))
    assert (
        line == ('{"seq":7,"prev":"' + "ab" * 32 + '","a":{"b":1.5,"y":2},"m":"é","z":1}').encode()
    )
    rec = decode(line)
    assert is_canonical(line, rec)
    assert not is_canonical(line.replace(b'"z":1', b'"z": 1'), rec)
    assert line_hash(line) == hashlib.sha256(line).hexdigest()


def test_canonical_refuses_nan_and_empty_bodies() -> None:
    with pytest.raises(ValueError):
        canonical({"x": math.nan})
    with pytest.raises(ValueError):
        encode(0, "0" * 64, {})


def test_exchange_record_keeps_the_outcome_and_drops_secrets() -> None:
    event = ExchangeCall(
        request_id=5,
        method="create_order",
        http_method="POST",
        path="/fapi/v1/order",
        # a new event source that forgot to redact: the record filters again
        params={
            "symbol": "BTCUSDT",
            "side": "buy",
            "type": "limit",
            "amount": 0.01,
            "price": 50000.0,
            "postOnly": True,
            "reduceOnly": False,
            "clientOrderId": "pb-x-1",
            "apiKey": KEY,
            "secret": SECRET,
            "signature": "deadbeef" * 8,
            "listenKey": "lk-" + SECRET,
        },
        status=400,
        ok=False,
        error_code=-2019,
        error_class="InsufficientFunds",
        latency_ms=12.25,
        rate_headers={"X-MBX-USED-WEIGHT-1M": "12", "X-MBX-ORDER-COUNT-10S": "1"},
        symbol="BTC/USDT:USDT",
        intent="grid",
        ts=1700000000.5,
        mono=100.25,
    )
    rec = exchange_body(event, CTX)
    text = json.dumps(rec)
    for secret in (KEY, SECRET, "deadbeef", "listenKey", "apiKey", "signature"):
        assert secret not in text
    assert rec["params"] == {
        "symbol": "BTCUSDT",
        "side": "buy",
        "type": "limit",
        "amount": 0.01,
        "price": 50000.0,
        "postOnly": True,
        "reduceOnly": False,
        "clientOrderId": "pb-x-1",
    }
    assert rec["run"] == "r1" and rec["profile"] == "main" and rec["command"] == "run"
    assert (rec["status"], rec["err_code"], rec["err_class"]) == (400, -2019, "InsufficientFunds")
    assert rec["rate"] == {"x-mbx-used-weight-1m": "12", "x-mbx-order-count-10s": "1"}
    assert (rec["ts"], rec["mono"], rec["latency_ms"], rec["req"]) == (
        1700000000.5,
        100.25,
        12.25,
        5,
    )
    assert (rec["http"], rec["path"], rec["method"]) == ("POST", "/fapi/v1/order", "create_order")
    assert is_order_related(rec)


def test_decision_data_goes_through_an_allow_list() -> None:
    class Opaque:
        def __repr__(self) -> str:
            return SECRET

    event = Decision(
        "retry",
        "retry",
        "RETRY_TIMEOUT",
        "retrying fetch_ticker after a timeout (attempt 2 of 5)",
        {
            "attempt": 2,
            "max_attempts": 5,
            "delay_s": 0.4,
            "secret": SECRET,
            "api_key": KEY,
            "error": f"GET https://x/fapi?signature={SECRET}",
            "budget": {"weight": 1200, "apiKey": KEY},
            "scopes": ["read", "trade"],
            "value": math.inf,
            "used": Opaque(),
        },
    )
    rec = decision_body(event, CTX)
    text = json.dumps(rec)
    assert SECRET not in text and KEY not in text and "signature" not in text
    assert rec["data"] == {
        "attempt": 2,
        "max_attempts": 5,
        "delay_s": 0.4,
        "budget": {"weight": 1200},
        "scopes": ["read", "trade"],
        "value": "inf",
        "used": "Opaque",
    }
    assert rec["dropped"] == 3  # counted, never named
    assert (rec["layer"], rec["action"], rec["code"]) == ("retry", "retry", "RETRY_TIMEOUT")
    assert rec["sentence"].startswith("retrying fetch_ticker")
    canonical(rec)  # always serialisable


def test_allow_list_has_no_key_material_names() -> None:
    forbidden = {"apiKey", "secret", "signature", "listenKey", "api_key", "password", "error"}
    assert not forbidden & DECISION_FIELDS


@pytest.mark.parametrize(
    ("event", "related"),
    [
        (ExchangeCall(1, "create_order", "POST", "/o", {}, 200, True), True),
        (ExchangeCall(1, "cancel_all_orders", "DELETE", "/o", {}, 200, True), True),
        (ExchangeCall(1, "set_leverage", "POST", "/l", {}, 200, True), True),
        (ExchangeCall(1, "fetch_ticker", "GET", "/t", {}, 200, True), False),
        (Decision("kill", "trip", "KILL_MANUAL", "tripped"), True),
        (Decision("risk", "reject", "RISK_MAX_NOTIONAL", "too big"), True),
        (Decision("ratelimit", "wait", "RATE_WAIT", "waiting"), False),
    ],
)
def test_order_related_records(event: ExchangeCall | Decision, related: bool) -> None:
    body = event_body(event, CTX)
    assert body is not None and is_order_related(body) is related


def test_fill_and_order_records_carry_the_trade_never_the_raw_payload() -> None:
    fill = {
        "ts": 1700000000.5, "symbol": "BTC/USDT:USDT", "side": "buy", "price": 60000.1,
        "amount": 0.003, "cost": 180.0, "fee": 0.036, "fee_currency": "USDT", "maker": True,
        "order_id": "4000000002", "client_order_id": "pb-1", "trade_id": "700000002",
        "realized_pnl": float("nan"), "intent": "grid-buy-0", "decided_price": None,
        "info": {"apiKey": KEY},
    }  # fmt: skip
    rec = fill_body(fill, "stream", CTX, 1700000001.0, 5.0)
    assert rec["kind"] == "fill" and rec["source"] == "stream" and rec["run"] == "r1"
    assert rec["trade_id"] == "700000002" and rec["trade_ts"] == 1700000000.5
    assert rec["realized_pnl"] == "nan"  # canonical JSON cannot carry NaN
    assert "info" not in rec and KEY not in json.dumps(rec)
    canonical(rec)  # encodable
    order = {"id": "4000000002", "side": "sell", "type": "limit", "price": 60010.0,
             "amount": 0.003, "reduceOnly": True, "info": {"signature": SECRET}}  # fmt: skip
    rec = order_body(
        client_order_id="pb-2", symbol="BTC/USDT:USDT", status="closed", filled=0.003,
        order=order, source="rest", ctx=CTX, ts=1.0, mono=2.0,
    )  # fmt: skip
    assert rec["kind"] == "order" and rec["status"] == "closed" and rec["filled"] == 0.003
    assert rec["order_id"] == "4000000002" and rec["reduce_only"] is True
    assert SECRET not in json.dumps(rec)
    assert not is_order_related(rec)  # sealed by the interval checkpoint, not one each
