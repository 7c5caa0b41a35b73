"""The WebSocket API (/ws-fapi/v1) driven by ccxt.pro's *_ws order methods."""

from __future__ import annotations

import asyncio

import ccxt
import pytest

from perpbot.sim import SimHandle
from tests.sim.conftest import BTC
from tests.sim.ws_support import make_pro

pytestmark = pytest.mark.asyncio


async def test_place_modify_cancel_over_the_websocket_api(sim: SimHandle) -> None:
    key, secret = sim.create_account()
    pro = make_pro(sim, key, secret)
    try:
        await pro.load_markets()
        placed = await pro.create_order_ws(BTC, "limit", "buy", 0.01, 59000.0)
        assert placed["status"] == "open"
        edited = await pro.edit_order_ws(placed["id"], BTC, "limit", "buy", 0.02, 59100.0)
        assert (edited["amount"], edited["price"]) == (0.02, 59100.0)
        truth = next(o for o in sim.state()["orders"] if o["orderId"] == int(placed["id"]))
        assert (truth["origQty"], truth["price"], truth["status"]) == ("0.020", "59100.00", "NEW")
        canceled = await pro.cancel_order_ws(placed["id"], BTC)
        assert canceled["status"] == "canceled"
        filled = await pro.create_order_ws(BTC, "market", "sell", 0.01)
        assert (filled["status"], filled["filled"]) == ("closed", 0.01)
        with pytest.raises(ccxt.InvalidOrder):  # -4164 from the engine, as over REST
            await pro.create_order_ws(BTC, "limit", "buy", 0.001, 59000.0)
        state = sim.state()
        assert state["counters"]["rejects"]["-4164"] == 1
        assert [o["status"] for o in state["orders"]] == ["CANCELED", "FILLED"]
    finally:
        await pro.close()


async def test_bad_signature_is_rejected_and_nothing_is_placed(sim: SimHandle) -> None:
    key, secret = sim.create_account()
    pro = make_pro(sim, key, "0" * len(secret))
    try:
        await pro.load_markets()
        with pytest.raises(ccxt.AuthenticationError):
            await asyncio.wait_for(pro.create_order_ws(BTC, "market", "buy", 0.01), 5)
        assert sim.state()["orders"] == []
    finally:
        await pro.close()
