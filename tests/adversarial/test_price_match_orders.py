"""priceMatch orders against a scope's max_notional, over real HTTP against a quiet simulator
(resting levels stay put) whose own state is the truth: its request counter for "nothing
reached the exchange", its order record for the price the book gave the order.

The scope gate values a priceMatch order at the level of the book read just before sending
(``OrderSpec.match_price``; ``ctx`` reads it, tests/integration/test_price_match_run.py),
else at the PERCENT_PRICE band edge (mark x multiplierUp), and refuses when it knows neither.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from perpbot.client.price_match import matched_price
from perpbot.client.request import OrderSpec
from tests.adversarial.test_wire_orders import FULL, refused
from tests.integration.risk_support.bot import quiet
from tests.keys_support.scope_session import BTC, Session, denied

pytestmark = pytest.mark.usefixtures("memory_keyring")  # stored profiles, in memory

AMOUNT, OPENED = 0.01, 0.002


@pytest.fixture
async def quiet_session(sim_factory: Any) -> AsyncIterator[Session]:
    s = Session(sim_factory(market=quiet()))
    yield s
    for conn in s.conns:
        await conn.close()


async def book(s: Session) -> dict[str, Any]:
    """The book after a small position was opened (so that positions carry a mark)."""
    trader = (await s.connect("trader", commands=FULL)).client
    await trader.create_order(OrderSpec(BTC, "buy", "market", OPENED))
    return await trader.fetch_order_book(BTC, 20)


def sim_order(s: Session, order_id: str) -> dict[str, Any]:
    (truth,) = [o for o in s.sim.state()["orders"] if str(o["orderId"]) == order_id]
    return truth


def matched(spec: OrderSpec, levels: dict[str, Any]) -> OrderSpec:
    """The spec with the reading ``ctx`` takes before it sends (the same REST depth read)."""
    assert spec.price_match is not None
    spec.match_price = matched_price(spec.side, spec.price_match, levels["bids"], levels["asks"])
    spec.match_at = time.time()
    return spec


async def test_an_order_the_book_prices_beyond_max_notional_is_refused_one_within_fills(
    quiet_session: Session,
) -> None:
    s = quiet_session
    levels = await book(s)
    ask1, ask20 = levels["asks"][0][0], levels["asks"][19][0]
    # the mark follows the opening trade on the simulator's clock: it may sit a little above
    # the best ask by now; the cap sits between the higher of the two and the 20th level
    mark = float(s.sim.state()["markets"]["BTCUSDT"]["mark"])
    low = max(ask1, mark)
    assert low < ask20  # valued at the mark (or the best ask), the deep order would pass
    cap = AMOUNT * (low + ask20) / 2.0
    client = (await s.connect("limited", max_notional=cap)).client
    await client.fetch_positions([BTC])  # the mark is known too: it alone would pass

    deep = matched(OrderSpec(BTC, "buy", "limit", AMOUNT, price_match="OPPONENT_20"), levels)
    err = await denied(s, client.create_order(deep))
    assert err.code == "SCOPE_MAX_NOTIONAL", err.message
    assert f"valued at {ask20:g}" in err.message and "OPPONENT_20" in err.message
    assert len(s.sim.state()["orders"]) == 1  # the first position's: nothing reached it

    near = matched(OrderSpec(BTC, "buy", "limit", AMOUNT, price_match="OPPONENT"), levels)
    placed = await client.create_order(near)
    truth = sim_order(s, placed["id"])
    assert truth["priceMatch"] == "OPPONENT" and float(truth["price"]) == ask1
    assert truth["status"] == "FILLED" and float(truth["executedQty"]) == AMOUNT
    assert float(placed["price"]) == ask1  # the answer carries the price the book gave it
    assert float(truth["cumQuote"]) <= cap  # the limit held at the actual fill
    assert s.position() == pytest.approx(OPENED + AMOUNT)


async def test_without_a_fresh_reading_the_order_is_valued_at_the_band_edge(
    quiet_session: Session,
) -> None:
    s = quiet_session
    levels = await book(s)
    ask1 = levels["asks"][0][0]
    mark = float(s.sim.state()["markets"]["BTCUSDT"]["mark"])
    cap = AMOUNT * mark * 1.02  # the book's level fits; the band edge (mark x 1.05) does not
    client = (await s.connect("limited", max_notional=cap)).client
    raw = ("create_order", BTC, "limit", "buy", AMOUNT, None)
    # a raw request carries no reading, and no mark is known yet: it cannot be valued
    err = await denied(s, client.call(*raw, params={"priceMatch": "OPPONENT"}))
    assert err.code == "SCOPE_NOTIONAL_UNKNOWN", err.message
    positions = await client.fetch_positions([BTC])
    known = float(positions[0]["markPrice"])
    err = await denied(s, client.call(*raw, params={"priceMatch": "OPPONENT"}))
    assert err.code == "SCOPE_MAX_NOTIONAL" and "band edge" in err.message, err.message
    assert f"valued at {known * 1.05:g}" in err.message
    # a reading older than MATCH_MAX_AGE_S is no reading
    stale = matched(OrderSpec(BTC, "buy", "limit", AMOUNT, price_match="OPPONENT"), levels)
    stale.match_at = time.time() - 60.0
    err = await denied(s, client.create_order(stale))
    assert err.code == "SCOPE_MAX_NOTIONAL" and "stale" in err.message, err.message
    assert len(s.sim.state()["orders"]) == 1
    fresh = matched(OrderSpec(BTC, "buy", "limit", AMOUNT, price_match="OPPONENT"), levels)
    placed = await client.create_order(fresh)
    assert float(sim_order(s, placed["id"])["price"]) == ask1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((BTC, "limit", "buy", AMOUNT, None), "NONE"),
        ((BTC, "limit", "buy", AMOUNT, None), "OPPONENT_3"),
        ((BTC, "limit", "buy", AMOUNT, 57600.0), "QUEUE"),
        ((BTC, "market", "buy", AMOUNT, None), "OPPONENT"),
    ],
)
async def test_what_binance_would_refuse_is_refused_before_any_request(
    quiet_session: Session, args: tuple[Any, ...], match: str
) -> None:
    client = (await quiet_session.connect("trader", commands=FULL)).client
    await client.load_markets()
    message = await refused(
        quiet_session, client.call("create_order", *args, params={"priceMatch": match}),
        "BAD_PRICE_MATCH",
    )  # fmt: skip
    assert "priceMatch" in message
