"""The ExchangeCall a request publishes: every field, for a read, an order and an error.

The transport builds the event positionally on the hot path, so this pins each field to
what actually happened on the wire (ccxt over HTTP to the simulator).
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from perpbot.client.request import OrderSpec
from tests.integration.ratelimit.conftest import SYMBOL


async def test_a_read_publishes_what_went_over_the_wire(sim: Any, open_guarded: Any) -> None:
    async with open_guarded(sim) as (client, rec):
        before_wall, before_mono = time.time(), time.monotonic()
        await client.fetch_ticker(SYMBOL)
        after_wall, after_mono = time.time(), time.monotonic()
    (ev,) = [c for c in rec.calls if c.method == "fetch_ticker"]
    assert ev.kind == "exchange" and ev.request_id > 0
    assert (ev.http_method, ev.path, ev.status) == ("GET", "/fapi/v1/ticker/24hr", 200)
    assert ev.ok is True and ev.error_code is None and ev.error_class is None
    assert ev.params == {"symbol": SYMBOL} and ev.symbol == SYMBOL and ev.intent is None
    usage = {k.lower(): v for k, v in ev.rate_headers.items()}
    assert int(usage["x-mbx-used-weight-1m"]) >= 1
    assert before_wall <= ev.ts <= after_wall and before_mono <= ev.mono <= after_mono
    assert 0 < ev.latency_ms <= (after_mono - before_mono) * 1000.0


async def test_an_order_publishes_its_allow_listed_fields(sim: Any, open_guarded: Any) -> None:
    async with open_guarded(sim) as (client, rec):
        spec = OrderSpec(SYMBOL, "buy", "market", 0.01, intent="grid level 1")
        await client.create_order(spec)
    (ev,) = [c for c in rec.calls if c.method == "create_order"]
    assert (ev.http_method, ev.path, ev.status, ev.ok) == ("POST", "/fapi/v1/order", 200, True)
    assert ev.intent == "grid level 1" and ev.symbol == SYMBOL
    assert ev.params["side"] == "buy" and ev.params["amount"] == 0.01
    assert ev.params["clientOrderId"] == spec.client_order_id
    assert not {"apiKey", "secret", "signature"} & set(ev.params)


async def test_an_exchange_error_is_published_with_its_code(sim: Any, open_guarded: Any) -> None:
    import ccxt

    async with open_guarded(sim, retry={"max_attempts": 1}) as (client, rec):
        with pytest.raises(ccxt.OrderNotFound):
            await client.cancel_order("123456789", SYMBOL)
    failed = [c for c in rec.calls if c.method == "cancel_order" and not c.ok]
    assert failed, rec.calls
    ev = failed[-1]
    assert ev.status == 400 and ev.error_code == -2011 and ev.error_class == "OrderNotFound"
    assert ev.params.get("symbol") == SYMBOL
