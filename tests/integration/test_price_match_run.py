"""A strategy's priceMatch orders in a real run (the runner, its plugins and pipeline, ccxt
over HTTP to a quiet simulator whose own state is the truth).

- ``ctx.limit_order(..., price_match=...)`` reads the book first (the stream's local book on
  streams, else one REST depth read through the pipeline) and the risk gate values the order
  at that level: one the book prices beyond ``max_order_notional`` is refused and no order
  reaches the simulator; one within fills, and the simulator's order shows the matched price,
  which the run's ledger records from the answer;
- ``place_orders`` takes ``price_match`` and ``modify_order`` keeps it;
- what Binance would refuse (a price too) is refused with BAD_PRICE_MATCH, no order sent;
- the signed log records the request as sent (priceMatch, no price).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import ccxt
import pytest

from perpbot.app.connect import connect
from perpbot.audit.reader import iter_records
from perpbot.audit.subscriber import attach_to_bus
from perpbot.client.loopback import configure_loopback
from perpbot.client.request import OrderSpec
from perpbot.config import ExchangeSection
from perpbot.engine import OrderRejected
from perpbot.engine.context import Context
from perpbot.events import EventBus
from perpbot.paths import logs_dir
from perpbot.risk.inputs import num
from tests.integration.risk_support.bot import BTC, Bot, quiet, write_toml

AMOUNT = 0.01
DEPTH = "/fapi/v1/depth"
KEY_ENV = "PERPBOT_SIM_API_KEY"


@pytest.fixture
def venue(sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    sim = sim_factory(market=quiet())
    key, secret = sim.create_account()
    monkeypatch.setenv(KEY_ENV, key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    return sim


def levels(sim: Any) -> dict[str, Any]:
    ex = ccxt.binanceusdm({"enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    return ex.fetch_order_book(BTC, 20)


def orders(sim: Any) -> list[dict[str, Any]]:
    return list(sim.state()["orders"])


def depth_reads(sim: Any) -> int:
    per_path = sim.state()["counters"].get("per_path") or {}
    return sum(n for path, n in per_path.items() if DEPTH in path)


async def rejected(bot: Bot, fn: Any) -> OrderRejected:
    with pytest.raises(OrderRejected) as info:
        await bot.do(fn)
    return info.value


def mid(ctx: Context) -> Context:
    ctx.mid(BTC)  # a decision on a fresh price
    return ctx


@pytest.mark.parametrize("streams", [False, True], ids=["REST depth", "stream book"])
async def test_a_price_match_order_is_valued_at_the_level_the_book_gives_it(
    venue: Any, tmp_path: Path, streams: bool
) -> None:
    sim = venue
    book = levels(sim)
    ask1, ask20 = book["asks"][0][0], book["asks"][19][0]
    bid5 = book["bids"][4][0]
    cap = AMOUNT * (ask1 + ask20) / 2.0  # the book's 20th ask is beyond it, its best is not
    toml = write_toml(
        tmp_path,
        sim.base_url,
        exchange={"streams": streams, "reconcile_interval": 600},
        risk={"symbols": {BTC: {"max_order_notional": cap}}, "accept_no_limits": True},
    )
    async with Bot(toml) as bot:
        if streams:  # the local book is there before the order reads it
            await bot.until(lambda: bot.runner.streamed_book(BTC, 20) is not None)
        reads = depth_reads(sim)
        r = await rejected(
            bot, lambda ctx: mid(ctx).limit_order(BTC, "buy", AMOUNT, price_match="OPPONENT_20")
        )
        assert r.code == "RISK_MAX_ORDER_NOTIONAL", r.sentence
        assert f"x {num(ask20)})" in r.sentence  # valued at the book's 20th ask
        assert not orders(sim)  # nothing reached the simulator
        if streams:
            assert depth_reads(sim) == reads  # the stream's local book, no REST read
        else:
            assert depth_reads(sim) == reads + 2  # mid's and the order's, each one request

        placed = await bot.do(
            lambda ctx: mid(ctx).limit_order(BTC, "buy", AMOUNT, price_match="OPPONENT")
        )
        (truth,) = orders(sim)
        assert truth["priceMatch"] == "OPPONENT" and float(truth["price"]) == ask1
        assert truth["status"] == "FILLED" and float(truth["cumQuote"]) <= cap
        assert placed.price == ask1 and placed.price_match == "OPPONENT"
        tracked = bot.runner.ledger.orders[str(placed.client_order_id)]
        assert tracked.price == ask1 and tracked.spec.price is None  # the answer's price

        # place_orders takes it, modify_order keeps it (the book prices the new order)
        batch = [{"symbol": BTC, "side": "buy", "amount": 0.002, "price_match": "QUEUE_5"}]
        (resting,) = await bot.do(lambda ctx: mid(ctx).place_orders(batch))
        assert resting.price_match == "QUEUE_5", resting
        first = next(o for o in orders(sim) if str(o["orderId"]) == resting.id)
        assert first["priceMatch"] == "QUEUE_5" and float(first["price"]) == bid5
        assert first["status"] == "NEW"
        moved = await bot.do(lambda ctx: mid(ctx).modify_order(resting, amount=0.003))
        second = next(o for o in orders(sim) if str(o["orderId"]) == moved.id)
        assert second["priceMatch"] == "QUEUE_5" and float(second["price"]) == bid5
        assert float(second["origQty"]) == 0.003 and second["status"] == "NEW"

        count = len(orders(sim))
        r = await rejected(
            bot,
            lambda ctx: mid(ctx).limit_order(BTC, "buy", AMOUNT, 59_000.0, price_match="QUEUE"),
        )
        assert r.code == "BAD_PRICE_MATCH", r.sentence
        r = await rejected(bot, lambda ctx: ctx.limit_order(BTC, "buy", AMOUNT, price_match="X"))
        assert r.code == "BAD_PRICE_MATCH", r.sentence
        assert len(orders(sim)) == count


async def test_max_position_notional_holds_at_the_price_the_book_gives(
    venue: Any, tmp_path: Path
) -> None:
    sim = venue
    book = levels(sim)
    ask1, ask10 = book["asks"][0][0], book["asks"][9][0]
    cap = AMOUNT * (ask1 + ask10) / 2.0
    toml = write_toml(
        tmp_path,
        sim.base_url,
        exchange={"reconcile_interval": 600},
        risk={"symbols": {BTC: {"max_position_notional": cap}}, "accept_no_limits": True},
    )
    async with Bot(toml) as bot:
        r = await rejected(
            bot, lambda ctx: mid(ctx).limit_order(BTC, "buy", AMOUNT, price_match="OPPONENT_10")
        )
        assert r.code == "RISK_MAX_POSITION_NOTIONAL", r.sentence
        assert not orders(sim)
        await bot.do(lambda ctx: mid(ctx).limit_order(BTC, "buy", AMOUNT, price_match="OPPONENT"))
    acct = next(a for a in sim.state()["accounts"] if a["api_key"] == os.environ[KEY_ENV])
    (held,) = [p for p in acct["positions"] if p["symbol"] == "BTCUSDT"]
    assert float(held["positionAmt"]) == AMOUNT
    assert float(held["positionAmt"]) * float(held["entryPrice"]) <= cap  # at the fill price


async def test_the_signed_log_records_the_request_as_sent(
    venue: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The audit record of a priceMatch order: priceMatch, no price (what went on the wire);
    the price the book gave it is in the exchange's answer (the ledger, the simulator)."""
    from keyring.backends import fail  # lazy: the keyring package only for this test

    monkeypatch.setattr("keyring.core._keyring_backend", fail.Keyring())
    bus = EventBus()
    audit = attach_to_bus(bus, run_id="pm-audit", profile=None, command="run")
    conn = await connect(
        ExchangeSection(id="sim", url=venue.base_url), command="run", run_id="pm-audit", bus=bus
    )
    try:
        spec = OrderSpec(BTC, "sell", "limit", AMOUNT, price_match="QUEUE_10",
                         client_order_id="pb-pm-audit-1")  # fmt: skip
        placed = await conn.client.create_order(spec)
    finally:
        await conn.close()
        audit.close()
    (truth,) = orders(venue)
    assert truth["priceMatch"] == "QUEUE_10" and float(truth["price"]) == placed["price"]
    records = list(iter_records(logs_dir() / "pm-audit"))
    (sent,) = [r for r in records if r["kind"] == "exchange" and r["method"] == "create_order"]
    assert sent["ok"] and sent["params"]["priceMatch"] == "QUEUE_10"
    assert sent["params"]["price"] is None and sent["params"]["clientOrderId"] == "pb-pm-audit-1"
