"""GTD orders and priceMatch: the simulator's answers vs Binance's documented ones.

Sources (Binance USD-M futures API docs):
- New Order (TRADE), POST /fapi/v1/order:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/New-Order
  * goodTillDate: "order cancel time for timeInForce GTD, mandatory when timeInforce set to
    GTD; order the timestamp only retains second-level precision, ms part will be ignored;
    The goodTillDate timestamp must be greater than the current time plus 600 seconds and
    smaller than 253402300799000";
  * priceMatch: "only avaliable for LIMIT/STOP/TAKE_PROFIT order; can be set to OPPONENT/
    OPPONENT_5/ OPPONENT_10/ OPPONENT_20: /QUEUE/ QUEUE_5/ QUEUE_10/ QUEUE_20; Can't be
    passed together with price"; "LIMIT: timeInForce, quantity, price or priceMatch".
- Error codes:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
  -5037 INVALID_PRICE_MATCH, -5038 UNSUPPORTED_ORDER_TYPE_PRICE_MATCH, -5040
  FUTURE_GOOD_TILL_DATE, -5041 BBO_ORDER_REJECT ("No depth matches this BBO order").
  The docs give no code for priceMatch sent with a price; the simulator answers -1106
  (a parameter sent when not required), Binance's generic code for that.
- Place Multiple Orders: "Parameter rules are same with New Order":
  https://developers.binance.com/docs/derivatives/usds-margined-futures/trade/rest-api/Place-Multiple-Orders
- Exchange Information lists "GTD" in each symbol's timeInForce:
  https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api/Exchange-Information

ccxt's binanceusdm passes both through its params (``timeInForce``/``goodTillDate``,
``priceMatch``, which also lifts its own "price required" check). The simulator's state
(GET /__sim/state) is the truth the client's view is checked against.
"""

from __future__ import annotations

import ccxt
import pytest

from .conftest import BTC, make_sync, quiet_config, quiet_market


@pytest.fixture
def venue(sim_factory):
    sim = sim_factory(quiet_config(market=quiet_market(taker_rate=0.0)))
    key, secret = sim.create_account(balance=100_000)
    ex = make_sync(sim, key, secret)
    ex.load_markets()
    return sim, ex


def _now(ex) -> int:
    return int(ex.fapiPublicGetTime()["serverTime"])


def _state_order(sim, order_id: str) -> dict:
    return next(o for o in sim.state()["orders"] if str(o["orderId"]) == order_id)


def test_gtd_order_rests_then_expires_at_its_good_till_date(venue) -> None:
    sim, ex = venue
    now = _now(ex)
    good_till = now + 700_000 + 789  # the ms part is dropped (second precision)
    order = ex.create_order(
        BTC, "limit", "buy", 0.01, 59_000, {"timeInForce": "GTD", "goodTillDate": good_till}
    )
    raw = order["info"]
    assert raw["timeInForce"] == "GTD" and raw["status"] == "NEW"
    assert raw["goodTillDate"] == good_till // 1000 * 1000
    assert [o["id"] for o in ex.fetch_open_orders(BTC)] == [order["id"]]
    sim.advance(700_000 - 5_000)  # five seconds before: still open
    assert ex.fetch_order(order["id"], BTC)["info"]["status"] == "NEW"
    sim.advance(10_000)
    fetched = ex.fetch_order(order["id"], BTC)
    assert fetched["info"]["status"] == "EXPIRED" and fetched["status"] == "expired"
    assert int(fetched["info"]["updateTime"]) == good_till // 1000 * 1000
    assert ex.fetch_open_orders(BTC) == []
    truth = _state_order(sim, order["id"])
    assert truth["status"] == "EXPIRED" and truth["timeInForce"] == "GTD"


def test_gtd_refusals_carry_binances_codes(venue) -> None:
    sim, ex = venue
    now = _now(ex)
    raw = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTD",
        "quantity": "0.01",
        "price": "59000",
    }
    cases = [
        ({}, "-1102"),  # goodTillDate is mandatory with GTD
        ({"goodTillDate": str(now + 600_000)}, "-5040"),  # not later than now + 600 s
        ({"goodTillDate": str(now + 60_000)}, "-5040"),
        ({"goodTillDate": "253402300799000"}, "-5040"),  # not before 9999-12-31 23:59:59
        ({"goodTillDate": "soon"}, "-1100"),
    ]
    for change, code in cases:
        with pytest.raises(ccxt.ExchangeError) as info:
            ex.fapiPrivatePostOrder({**raw, **change})
        assert code in str(info.value), (change, str(info.value))
    assert ex.fetch_open_orders(BTC) == []
    assert not [o for o in sim.state()["orders"] if o["timeInForce"] == "GTD"]
    # just past the 600 s bound is accepted
    ok = ex.fapiPrivatePostOrder({**raw, "goodTillDate": str(now + 601_000)})
    assert ok["status"] == "NEW" and ok["timeInForce"] == "GTD"


def test_gtd_order_filled_before_expiry_stays_filled(venue) -> None:
    sim, ex = venue
    now = _now(ex)
    sell = ex.create_order(
        BTC, "limit", "sell", 0.01, 60_300, {"timeInForce": "GTD", "goodTillDate": now + 700_000}
    )
    sim.jump("BTCUSDT", 1.0)  # the market moves through 60300: the GTD ask fills
    assert ex.fetch_order(sell["id"], BTC)["info"]["status"] == "FILLED"
    sim.advance(800_000)
    assert _state_order(sim, sell["id"])["status"] == "FILLED"


def test_price_match_sets_the_price_from_the_book_at_entry(venue) -> None:
    sim, ex = venue
    book = ex.fapiPublicGetDepth({"symbol": "BTCUSDT", "limit": 50})
    bids = [b[0] for b in book["bids"]]
    asks = [a[0] for a in book["asks"]]
    cases = [
        ("buy", "QUEUE", bids[0]),
        ("buy", "QUEUE_5", bids[4]),
        ("sell", "QUEUE_10", asks[9]),
        ("sell", "QUEUE_20", asks[19]),
    ]
    for side, match, expected in cases:
        order = ex.create_order(BTC, "limit", side, 0.01, None, {"priceMatch": match})
        raw = order["info"]
        assert raw["priceMatch"] == match and raw["status"] == "NEW", (match, raw)
        assert float(raw["price"]) == float(expected), (match, raw["price"], expected)
        assert float(_state_order(sim, order["id"])["price"]) == float(expected)
    # OPPONENT takes the other side's best price: a buy crosses and fills at the ask
    taker = ex.create_order(BTC, "limit", "buy", 0.01, None, {"priceMatch": "OPPONENT"})
    assert taker["info"]["status"] == "FILLED"
    assert float(taker["info"]["price"]) == float(asks[0])
    assert float(taker["info"]["avgPrice"]) == float(asks[0])
    # OPPONENT_5 for a sell: the 5th bid level (re-read: the book has not moved)
    bids_now = [b[0] for b in ex.fapiPublicGetDepth({"symbol": "BTCUSDT"})["bids"]]
    sell = ex.create_order(
        BTC, "limit", "sell", 0.01, None, {"priceMatch": "OPPONENT_5", "timeInForce": "IOC"}
    )
    assert float(sell["info"]["price"]) == float(bids_now[4])


def test_price_match_refusals_carry_binances_codes(venue) -> None:
    sim, ex = venue
    raw = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.01",
    }
    cases = [
        ({"priceMatch": "OPPONENT_3"}, "-5037"),
        ({"priceMatch": "BEST"}, "-5037"),
        ({"priceMatch": "QUEUE", "price": "59000"}, "-1106"),
        ({"priceMatch": "NONE"}, "-1102"),  # NONE: a price is needed again
        ({}, "-1102"),
    ]
    for change, code in cases:
        with pytest.raises(ccxt.ExchangeError) as info:
            ex.fapiPrivatePostOrder({**raw, **change})
        assert code in str(info.value), (change, str(info.value))
    market = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.01"}
    with pytest.raises(ccxt.ExchangeError) as info:
        ex.fapiPrivatePostOrder({**market, "priceMatch": "OPPONENT"})
    assert "-5038" in str(info.value)
    assert ex.fetch_open_orders(BTC) == []
    assert sim.state()["orders"] == []


def test_batch_orders_carry_gtd_and_price_match(venue) -> None:
    """Place-Multiple-Orders: "Parameter rules are same with New Order"."""
    sim, ex = venue
    now = _now(ex)
    best_bid = ex.fapiPublicGetDepth({"symbol": "BTCUSDT", "limit": 5})["bids"][0][0]
    base = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "quantity": "0.01"}
    answers = ex.fapiPrivatePostBatchOrders(
        {
            "batchOrders": [
                {**base, "timeInForce": "GTD", "price": "59000", "goodTillDate": now + 700_000},
                {**base, "timeInForce": "GTC", "priceMatch": "QUEUE"},
                {**base, "timeInForce": "GTD", "price": "59000", "goodTillDate": now},
            ]
        }
    )
    gtd, queue, refused = answers
    assert gtd["timeInForce"] == "GTD" and gtd["goodTillDate"] == (now + 700_000) // 1000 * 1000
    assert queue["priceMatch"] == "QUEUE" and float(queue["price"]) == float(best_bid)
    assert refused["code"] == -5040
    sim.advance(710_000)
    statuses = {str(o["orderId"]): o["status"] for o in sim.state()["orders"]}
    assert statuses == {str(gtd["orderId"]): "EXPIRED", str(queue["orderId"]): "NEW"}
