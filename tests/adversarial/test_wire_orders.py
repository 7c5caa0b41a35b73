"""Orders and leverage changes are judged as they go on the wire (ccxt lays ``params`` over
the positional arguments), and numbers the exchange should never see are refused at the
boundary. Over real HTTP against the simulator: its own request counter is the truth for
"nothing reached the exchange"."""

from __future__ import annotations

import math
from typing import Any

import pytest

from perpbot.client.request import OrderSpec
from perpbot.client.validate import ORDER_PARAMS, OVERRIDES, OrderRefused
from tests.keys_support.scope_session import BTC, ETH, Session, denied

pytestmark = pytest.mark.usefixtures("memory_keyring")  # stored profiles, in memory

LIMITED = {"symbols": (BTC,), "max_notional": 500.0, "max_leverage": 3.0}
FULL = {"run": {"read", "trade", "cancel", "leverage"}}

# a value for each param that, laid over a harmless 0.001 BTC buy, would change what is sent
OVERRIDE_VALUES: dict[str, Any] = {
    "symbol": "ETHUSDT",
    "side": "SELL",
    "type": "STOP_MARKET",
    "quantity": 0.05,
    "amount": 0.05,
    "price": 1,
    "leverage": 125,
    "closePosition": True,
    "positionSide": "SHORT",
    "hedged": True,
    "stopPrice": 1,
    "triggerPrice": 1,
    "stopLossPrice": 1,
    "takeProfitPrice": 1,
    "trailingPercent": 1,
    "callbackRate": 1,
    "trailingDelta": 1,
    "activationPrice": 1,
    "trailingTriggerPrice": 1,
    "priceMatch": "OPPONENT",
    "quoteOrderQty": 5000,
    "cost": 5000,
    "newClientOrderId": "not-perpbots",
    "clientAlgoId": "not-perpbots",
    "isAlgoOrder": True,
    "portfolioMargin": True,
    "marginMode": "isolated",
    "marginType": "ISOLATED",
    "workingType": "MARK_PRICE",  # not in OVERRIDES: refused as unknown all the same
    "goodTillDate": 1,
}
WIRE_FIELDS = [*sorted({*OVERRIDES, *OVERRIDE_VALUES} - set(ORDER_PARAMS)), "reduceOnly"]


async def refused(s: Session, call: Any, code: str) -> str:
    before = s.requests()
    with pytest.raises(OrderRefused) as info:
        await call
    assert info.value.code == code, info.value.message
    assert s.requests() == before, "a refused call must not reach the simulator"
    assert s.decisions[-1].code == code
    return info.value.message


@pytest.mark.parametrize("field", WIRE_FIELDS)
async def test_no_param_may_override_a_judged_field(session: Session, field: str) -> None:
    client = (await session.connect("limited", **LIMITED)).client
    value = OVERRIDE_VALUES.get(field, "true")  # reduceOnly as a string: not a bool
    params = {field: value}
    call = client.call("create_order", BTC, "limit", "buy", 0.001, 1000.0, params=params)
    message = await refused(session, call, "BAD_PARAM")
    assert repr(field) in message


@pytest.mark.parametrize("field", ["leverage", "symbol", "marginType", "portfolioMargin"])
async def test_no_param_may_override_a_leverage_change(session: Session, field: str) -> None:
    client = (await session.connect("limited", **LIMITED)).client
    value = OVERRIDE_VALUES[field]
    await refused(session, client.call("set_leverage", 3, BTC, params={field: value}), "BAD_PARAM")
    call = client.call("set_margin_mode", "cross", BTC, params={field: value})
    await refused(session, call, "BAD_PARAM")


async def test_the_reported_bypasses_are_closed(session: Session) -> None:
    """The three bypasses issue 15 reproduced, each now refused before the exchange."""
    client = (await session.connect("limited", **LIMITED)).client
    # 4 % under the 60 000 start: inside PERCENT_PRICE (+-5 %), too far to fill; 115 USDT
    order = ("create_order", BTC, "limit", "buy", 0.002, 57600.0)
    await refused(session, client.call(*order, params={"quantity": "0.05"}), "BAD_PARAM")
    await refused(session, client.call(*order, params={"symbol": "ETHUSDT"}), "BAD_PARAM")
    lev = client.call("set_leverage", 3, BTC, params={"leverage": 125})
    await refused(session, lev, "BAD_PARAM")
    assert session.account()["leverage"].get("BTCUSDT") != 125
    # params passed positionally are the same params
    positional = client.call("create_order", BTC, "limit", "buy", 0.001, 1000.0, {"side": "SELL"})
    await refused(session, positional, "BAD_PARAM")
    # the request's symbol (what the other layers go by) must be the market it is sent to
    mismatch = client.call("create_order", "ETHUSDT", "limit", "buy", 0.1, 2000.0, symbol=BTC)
    await refused(session, mismatch, "BAD_SYMBOL")
    await refused(session, client.call("set_leverage", 2, ETH, symbol=BTC), "BAD_SYMBOL")
    # what the checked arguments themselves say is still judged
    await client.call(*order, params={"clientOrderId": "ok-1", "postOnly": True})
    assert len([o for o in session.sim.state()["open_orders"] if o["symbol"] == "BTCUSDT"]) == 1


BAD_AMOUNTS = [math.nan, math.inf, -math.inf, -0.0, 0.0, -0.001, "0.001", True, None, 1e12]
BAD_PRICES = [math.nan, math.inf, -0.0, 0.0, -5.0, "60000", True, 1e12, 1e-12]


@pytest.mark.parametrize("amount", BAD_AMOUNTS, ids=repr)
async def test_bad_amounts_are_refused_at_the_boundary(session: Session, amount: Any) -> None:
    client = (await session.connect("trader", commands=FULL)).client
    await client.load_markets()
    raw = client.call("create_order", BTC, "limit", "buy", amount, 1000.0)
    await refused(session, raw, "BAD_AMOUNT")
    spec = OrderSpec(symbol=BTC, side="buy", type="market", amount=amount)
    await refused(session, client.create_order(spec), "BAD_AMOUNT")


@pytest.mark.parametrize("price", BAD_PRICES, ids=repr)
async def test_bad_prices_are_refused_at_the_boundary(session: Session, price: Any) -> None:
    client = (await session.connect("trader", commands=FULL)).client
    await client.load_markets()
    raw = client.call("create_order", BTC, "limit", "buy", 0.001, price)
    await refused(session, raw, "BAD_PRICE")


async def test_bad_leverage_is_refused_at_the_boundary(session: Session) -> None:
    client = (await session.connect("trader", commands=FULL)).client
    for leverage in (math.nan, math.inf, -0.0, 0, 126, "20", True):
        await refused(session, client.call("set_leverage", leverage, BTC), "BAD_LEVERAGE")


async def test_max_notional_does_not_trust_the_decided_price(session: Session) -> None:
    """A market order "decided at 1.0" for 0.02 BTC is worth ~1,200 USDT at the mark."""
    trader = (await session.connect("trader", commands=FULL)).client
    await trader.create_order(OrderSpec(symbol=BTC, side="buy", type="market", amount=0.002))
    conn = await session.connect("limited", **LIMITED)
    client = conn.client
    lying = OrderSpec(symbol=BTC, side="buy", type="market", amount=0.02, decided_price=1.0)
    err = await denied(session, client.create_order(lying))
    assert err.code == "SCOPE_NOTIONAL_UNKNOWN"  # no mark known yet: not valued at 1.0
    positions = await client.fetch_positions([BTC])  # the mark arrives with the positions
    mark = float(positions[0]["markPrice"])
    err = await denied(session, client.create_order(lying))
    assert err.code == "SCOPE_MAX_NOTIONAL" and f"valued at {mark:g}" in err.message
    # a sell limit "at 1.0" fills at the market: valued at the mark too
    cheap = client.call("create_order", BTC, "limit", "sell", 0.02, 1.0)
    assert (await denied(session, cheap)).code == "SCOPE_MAX_NOTIONAL"
    assert session.position() == pytest.approx(0.002)
    small = OrderSpec(symbol=BTC, side="buy", type="market", amount=0.002, decided_price=1.0)
    await client.create_order(small)  # ~120 USDT at the mark: within the grant
    assert session.position() == pytest.approx(0.004)


async def test_a_gtd_order_goes_out_with_its_good_till_date(session: Session) -> None:
    """GTD (New Order: goodTillDate in ms, second precision, > now + 600 s) from an
    OrderSpec's ``good_till``: the simulator rests it with that date (its expiry there:
    tests/sim/test_conformance_gtd_price_match.py)."""
    client = (await session.connect("trader", commands=FULL)).client
    await client.load_markets()
    server_s = int((await client.fetch_time()) / 1000)
    good_till = server_s + 700.6  # the fraction is dropped on the wire, as Binance keeps it
    spec = OrderSpec(symbol=BTC, side="buy", type="limit", amount=0.002, price=57600.0,
                     time_in_force="GTD", good_till=good_till)  # fmt: skip
    placed = await client.create_order(spec)
    (truth,) = [o for o in session.sim.state()["orders"] if str(o["orderId"]) == placed["id"]]
    assert truth["timeInForce"] == "GTD" and truth["goodTillDate"] == (server_s + 700) * 1000
    assert truth["status"] == "NEW"


GTD_REFUSED = [
    {"timeInForce": "GTD"},  # GTD needs its date
    {"goodTillDate": 4_102_444_800_000},  # a date without GTD
    {"timeInForce": "GTC", "goodTillDate": 4_102_444_800_000},
    {"timeInForce": "GTD", "goodTillDate": math.nan},
    {"timeInForce": "GTD", "goodTillDate": "soon"},
    {"timeInForce": "GTD", "goodTillDate": 1.5},
    {"timeInForce": "GTD", "goodTillDate": 253402300799000},  # Binance's ceiling
]


@pytest.mark.parametrize("params", GTD_REFUSED, ids=repr)
async def test_gtd_params_are_judged_at_the_boundary(
    session: Session, params: dict[str, Any]
) -> None:
    client = (await session.connect("trader", commands=FULL)).client
    call = client.call("create_order", BTC, "limit", "buy", 0.002, 57600.0, params=params)
    message = await refused(session, call, "BAD_PARAM")
    assert "GTD" in message or "goodTillDate" in message, message
