"""Lost responses, 5xx, timeouts, clock skew: never a duplicate order, never a lost intent."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from perpbot.client.orders import client_order_id
from perpbot.client.request import OrderSpec
from perpbot.events import Decision

SYMBOL = "BTC/USDT:USDT"
FAST_RETRY = {"base_delay_s": 0.01, "max_delay_s": 0.05, "jitter_s": 0.01, "max_attempts": 8}


async def far_bid(client: Any) -> float:
    ticker = await client.fetch_ticker(SYMBOL)
    return round(float(ticker["last"]) * 0.97, 1)  # post-only, below (inside PERCENT_PRICE)


def spec(price: float, cid: str) -> OrderSpec:
    return OrderSpec(SYMBOL, "buy", "limit", 0.003, price, post_only=True, client_order_id=cid)


def orders_by_cid(sim: Any, cids: set[str]) -> Counter[str]:
    return Counter(o["clientOrderId"] for o in sim.state()["orders"] if o["clientOrderId"] in cids)


async def test_lost_responses_and_5xx_never_duplicate_an_order(
    sim_factory: Any, open_guarded: Any
) -> None:
    sim = sim_factory(seed=11)
    async with open_guarded(sim, retry=FAST_RETRY) as (client, rec):
        price = await far_bid(client)
        sim.set_faults(
            {
                "lost_response": {"rate": 0.3},  # committed, then the connection is closed
                "errors": {"rate": 0.1, "paths": ["/fapi/v1/order"], "methods": ["POST"],
                           "statuses": [500, 502, 503]},  # refused before anything happens
                "drop": {"rate": 0.05, "paths": ["/fapi/v1/order"], "methods": ["POST"]},
            }
        )  # fmt: skip
        cids = [client_order_id("run-lost", "grid", i) for i in range(40)]
        sem = asyncio.Semaphore(5)

        async def place(cid: str) -> dict[str, Any]:
            async with sem:
                return await client.create_order(spec(price, cid))

        placed = await asyncio.gather(*(place(c) for c in cids))
    counters = sim.state()["counters"]
    assert counters["lost_responses"] > 0 and counters["injected_errors"] > 0
    assert [o["clientOrderId"] for o in placed] == cids  # every intent answered, in order
    at_exchange = orders_by_cid(sim, set(cids))
    assert set(at_exchange) == set(cids)  # no intent lost
    assert max(at_exchange.values()) == 1  # no duplicate
    assert len(rec.of("RETRY_ADOPTED")) == counters["lost_responses"]
    assert rec.of("RETRY_RESEND_SAME_ID")
    unknown = rec.of("RETRY_OUTCOME_UNKNOWN")[0]
    assert unknown.action == "retry" and "looking it up by client order id" in unknown.sentence


# past the client's 400 ms timeout, after the order was committed: the answer never comes
# (held, then the connection closed), or comes late (delayed), to a client that gave up
ANSWER_PAST_TIMEOUT = {
    "held": {"lost_response": {"rate": 1.0, "count": 1, "mode": "hold", "hold_ms": 1500}},
    "delayed": {"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": 1500}},
}


@pytest.mark.parametrize("fault", list(ANSWER_PAST_TIMEOUT))
async def test_a_timeout_after_commit_is_adopted_not_resent(
    sim_factory: Any, open_guarded: Any, fault: str
) -> None:
    sim = sim_factory()
    async with open_guarded(sim, retry=FAST_RETRY, timeout_ms=400) as (client, rec):
        price = await far_bid(client)
        sim.set_faults(ANSWER_PAST_TIMEOUT[fault])
        order = await client.create_order(spec(price, "pb-timeout-1"))
        await asyncio.sleep(1.5)  # the held answer's time is over: still one order
    assert order["clientOrderId"] == "pb-timeout-1" and order["status"] == "open"
    assert orders_by_cid(sim, {"pb-timeout-1"}) == {"pb-timeout-1": 1}
    assert rec.of("RETRY_OUTCOME_UNKNOWN")[0].data["error"] == "RequestTimeout"
    adopted = rec.of("RETRY_ADOPTED")
    assert len(adopted) == 1 and adopted[0].action == "resolve"
    assert "adopted, not resent" in adopted[0].sentence


CANCEL_UNANSWERED = {  # the cancel is committed; its answer is lost, or comes past the timeout
    "lost": {"lost_response": {"rate": 1.0, "count": 1, "paths": ["/fapi/v1/order"],
                               "methods": ["DELETE"]}},
    "delayed": {"delayed_response": {"rate": 1.0, "count": 1, "delay_ms": 1500,
                                     "methods": ["DELETE"]}},
}  # fmt: skip


@pytest.mark.parametrize("fault", list(CANCEL_UNANSWERED))
async def test_an_unknown_cancel_is_confirmed_by_lookup(
    sim_factory: Any, open_guarded: Any, fault: str
) -> None:
    sim = sim_factory()
    async with open_guarded(sim, retry=FAST_RETRY, timeout_ms=400) as (client, rec):
        price = await far_bid(client)
        order = await client.create_order(spec(price, "pb-cancel-1"))
        sim.set_faults(CANCEL_UNANSWERED[fault])
        result = await client.cancel_order(order["id"], SYMBOL, client_order_id="pb-cancel-1")
    assert result["status"] == "canceled"
    [record] = [o for o in sim.state()["orders"] if o["clientOrderId"] == "pb-cancel-1"]
    assert record["status"] == "CANCELED"
    assert rec.of("RETRY_CANCEL_CONFIRMED")


def _rules_due(st: Any) -> None:
    st.rules_checked_at = 0.0  # as when a new refresh_s period has begun


async def test_a_cancel_lookup_held_for_due_rules_gets_them_re_read(
    sim_factory: Any, open_guarded: Any
) -> None:
    """The rate rules fall due for their re-read while a cancel's outcome is unknown. Its
    lookup (sent below the limiter) is held back for them; the limiter must re-read them,
    not hold the lookup back again and again (`kill --direct` hung past a minute boundary)."""
    sim = sim_factory()
    async with open_guarded(sim, retry=FAST_RETRY) as (client, rec):
        price = await far_bid(client)
        order = await client.create_order(spec(price, "pb-cancel-2"))
        limiter = client.pipeline.layer("ratelimit")

        def rules_fall_due(event: Any) -> None:
            if isinstance(event, Decision) and event.code == "RETRY_OUTCOME_UNKNOWN":
                limiter.host.post(_rules_due)  # in the store before the lookup asks it

        client.setup.bus.subscribe(rules_fall_due)
        sim.set_faults(
            {"errors": {"rate": 1.0, "count": 1, "statuses": [503], "paths": ["/fapi/v1/order"],
                        "methods": ["DELETE"]}}
        )  # fmt: skip
        reads = sim.state()["counters"]["per_path"]["/fapi/v1/exchangeInfo"]
        cancel = client.cancel_order(order["id"], SYMBOL, client_order_id="pb-cancel-2")
        result = await asyncio.wait_for(cancel, timeout=30)
    assert result["status"] == "canceled"
    [record] = [o for o in sim.state()["orders"] if o["clientOrderId"] == "pb-cancel-2"]
    assert record["status"] == "CANCELED"
    assert rec.of("RETRY_OUTCOME_UNKNOWN") and rec.of("RETRY_CANCEL_AGAIN")
    assert sim.state()["counters"]["per_path"]["/fapi/v1/exchangeInfo"] == reads + 1


async def test_an_intent_already_at_the_exchange_is_adopted_on_duplicate_id(
    sim_factory: Any, open_guarded: Any
) -> None:
    sim = sim_factory()
    async with open_guarded(sim, retry=FAST_RETRY) as (client, rec):
        price = await far_bid(client)
        first = await client.create_order(spec(price, "pb-dup-1"))
        again = await client.create_order(spec(price, "pb-dup-1"))  # e.g. after a restart
    assert again["id"] == first["id"]
    assert orders_by_cid(sim, {"pb-dup-1"}) == {"pb-dup-1": 1}
    assert sim.state()["counters"]["rejects"].get("-4116") == 1
    assert [d.code for d in rec.decisions if d.layer == "retry"] == [
        "RETRY_DUPLICATE_ID",
        "RETRY_ADOPTED",
    ]


async def test_clock_skew_resyncs_the_offset_once_and_retries(
    sim_factory: Any, open_guarded: Any
) -> None:
    sim = sim_factory()
    async with open_guarded(sim, retry=FAST_RETRY) as (client, rec):
        sim.set_faults({"clock_skew_ms": 20_000})  # the exchange's clock runs 20 s ahead
        balance = await client.fetch_balance()
        again = await client.fetch_balance()
        offset = client.exchange.options["timeDifference"]
    assert balance["total"]["USDT"] > 0 and again["total"]["USDT"] > 0
    resync = rec.of("RETRY_CLOCK_RESYNC")
    assert len(resync) == 1  # the second call is signed with the corrected offset
    assert -21_000 < offset < -19_000
    assert sim.state()["counters"]["rejects"].get("-1021") == 1
