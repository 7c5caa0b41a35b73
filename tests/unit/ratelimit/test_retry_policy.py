"""The Retrier alone, with a scripted ``call_next``: what is retried, what is resolved."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import ccxt
import pytest

from perpbot.client.idempotency import OutcomeUnknown
from perpbot.client.request import OrderSpec, Request
from perpbot.client.retry import Retrier, classify
from perpbot.client.waits import Interrupter, WaitInterrupted
from perpbot.config import RetrySection
from perpbot.events import Decision, EventBus
from perpbot.ratelimit.budget import Admission
from perpbot.ratelimit.layer import RateWait

FAST = RetrySection(max_attempts=5, base_delay_s=0.001, max_delay_s=0.002, jitter_s=0.0)
SYM = "BTC/USDT:USDT"


def body(code: int) -> str:
    return f'binanceusdm {{"code":{code},"msg":"x"}}'


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ccxt.RequestTimeout("t"), "unknown"),
        (ccxt.ExchangeNotAvailable("connection closed"), "unknown"),
        (ccxt.OnMaintenance("m"), "unknown"),
        (ccxt.OperationFailed(body(-1001)), "unknown"),
        (ccxt.NetworkError("n"), "unknown"),
        (ccxt.DDoSProtection("429"), "retry"),
        (ccxt.RateLimitExceeded("r"), "retry"),
        (ccxt.InvalidNonce(body(-1021)), "resync"),
        (ccxt.BadRequest(body(-1021)), "resync"),
        (ccxt.InvalidOrder(body(-2010)), "never"),
        (ccxt.InsufficientFunds(body(-2019)), "never"),
        (ccxt.AuthenticationError(body(-2015)), "never"),
        (ccxt.PermissionDenied("p"), "never"),
        (ccxt.BadRequest(body(-1102)), "never"),
        (ccxt.OrderNotFound(body(-2013)), "never"),
        (ccxt.ExchangeError(body(-9999)), "never"),
        (RateWait(Admission(2.0, "budget"), "GET /x"), "never"),
        (ValueError("bug"), "never"),
    ],
)
def test_classification(exc: BaseException, expected: str) -> None:
    assert classify(exc) == expected


class Script:
    """A fake inner pipeline: per method, a list of results or exceptions, in order."""

    def __init__(self, **steps: list[Any]) -> None:
        self.steps = {k: list(v) for k, v in steps.items()}
        self.calls: list[Request] = []

    async def __call__(self, request: Request) -> Any:
        self.calls.append(request)
        outcome = self.steps[request.method].pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome(request) if callable(outcome) else outcome

    def methods(self) -> list[str]:
        return [r.method for r in self.calls]


def make(cfg: RetrySection = FAST) -> tuple[Retrier, list[Decision], Interrupter]:
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    it = Interrupter()
    return Retrier(cfg, bus, it, id_tag=("run-1", "strat:direct"), seed=1), seen, it


def order_request(cid: str | None = "pb-abc-7") -> Request:
    spec = OrderSpec(SYM, "buy", "limit", 0.01, 50000.0, client_order_id=cid)
    return Request.for_order(spec)


def echo_order(status: str = "open") -> Callable[[Request], dict[str, Any]]:
    return lambda r: {
        "id": "4001",
        "clientOrderId": r.params.get("clientOrderId"),
        "status": status,
    }


async def test_reads_are_retried_on_transient_errors_and_explained() -> None:
    retrier, seen, _ = make()
    script = Script(
        fetch_ticker=[ccxt.RequestTimeout("t"), ccxt.ExchangeNotAvailable("5xx"), {"last": 1}]
    )
    assert await retrier(Request("fetch_ticker", (SYM,), symbol=SYM), script) == {"last": 1}
    assert script.methods() == ["fetch_ticker"] * 3
    assert [d.code for d in seen] == ["RETRY_TRANSIENT", "RETRY_TRANSIENT"]
    assert "retrying fetch_ticker BTC/USDT:USDT" in seen[0].sentence
    assert "RequestTimeout (attempt 2 of 5)" in seen[0].sentence


@pytest.mark.parametrize(
    "exc",
    [
        ccxt.InvalidOrder("x"),
        ccxt.InsufficientFunds("x"),
        ccxt.AuthenticationError("x"),
        ccxt.BadRequest("x"),
        ccxt.PermissionDenied("x"),
    ],
)
async def test_definite_errors_are_never_retried(exc: Exception) -> None:
    retrier, seen, _ = make()
    script = Script(fetch_balance=[exc, {}], create_order=[exc, {}])
    with pytest.raises(type(exc)):
        await retrier(Request("fetch_balance"), script)
    with pytest.raises(type(exc)):
        await retrier(order_request(), script)
    assert script.methods() == ["fetch_balance", "create_order"]
    assert seen == []


async def test_attempts_are_capped() -> None:
    retrier, _, _ = make(FAST.model_copy(update={"max_attempts": 3}))
    script = Script(fetch_ticker=[ccxt.RequestTimeout("t")] * 5)
    with pytest.raises(ccxt.RequestTimeout):
        await retrier(Request("fetch_ticker", (SYM,)), script)
    assert len(script.calls) == 3


async def test_total_deadline_stops_retrying() -> None:
    cfg = RetrySection(
        max_attempts=50, base_delay_s=0.05, max_delay_s=0.05, deadline_s=0.12, jitter_s=0.0
    )
    retrier, _, _ = make(cfg)
    script = Script(fetch_ticker=[ccxt.RequestTimeout("t")] * 50)
    t0 = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        await retrier(Request("fetch_ticker", (SYM,)), script)
    assert len(script.calls) <= 3
    assert time.monotonic() - t0 < 1.0


async def test_lost_create_is_looked_up_and_adopted_never_resent() -> None:
    retrier, seen, _ = make()
    script = Script(
        create_order=[ccxt.RequestTimeout("lost")],
        fetch_order=[echo_order()],
    )
    order = await retrier(order_request(), script)
    assert order["clientOrderId"] == "pb-abc-7"
    assert script.methods() == ["create_order", "fetch_order"]
    lookup = script.calls[1]
    assert lookup.params == {"clientOrderId": "pb-abc-7"} and lookup.args == (None, SYM)
    assert [(d.action, d.code) for d in seen] == [
        ("retry", "RETRY_OUTCOME_UNKNOWN"),
        ("resolve", "RETRY_ADOPTED"),
    ]


async def test_create_not_found_is_resent_with_the_same_id() -> None:
    retrier, seen, _ = make()
    script = Script(
        create_order=[ccxt.ExchangeNotAvailable("503 html"), echo_order()],
        fetch_order=[ccxt.OrderNotFound(body(-2013))],
    )
    order = await retrier(order_request(), script)
    assert script.methods() == ["create_order", "fetch_order", "create_order"]
    assert {r.params["clientOrderId"] for r in script.calls if r.method == "create_order"} == {
        "pb-abc-7"
    }
    assert order["status"] == "open"
    assert "RETRY_RESEND_SAME_ID" in [d.code for d in seen]


async def test_duplicate_id_reject_is_looked_up_again() -> None:
    retrier, seen, _ = make()
    script = Script(
        create_order=[ccxt.RequestTimeout("t"), ccxt.InvalidOrder(body(-4116))],
        fetch_order=[ccxt.OrderNotFound(body(-2013)), echo_order("closed")],
    )
    order = await retrier(order_request(), script)
    assert script.methods() == ["create_order", "fetch_order", "create_order", "fetch_order"]
    assert order["status"] == "closed"
    assert [d.code for d in seen][-2:] == ["RETRY_DUPLICATE_ID", "RETRY_ADOPTED"]


async def test_a_rate_limited_create_is_not_resent() -> None:
    retrier, _, _ = make()
    script = Script(create_order=[ccxt.DDoSProtection("429"), echo_order()])
    with pytest.raises(ccxt.DDoSProtection):
        await retrier(order_request(), script)
    assert script.methods() == ["create_order"]


async def test_failed_lookups_until_the_deadline_leave_a_clear_unknown() -> None:
    retrier, _, _ = make(FAST.model_copy(update={"max_attempts": 3}))
    script = Script(
        create_order=[ccxt.RequestTimeout("t")],
        fetch_order=[ccxt.RequestTimeout("t")] * 5,
    )
    with pytest.raises(OutcomeUnknown) as err:
        await retrier(order_request(), script)
    assert err.value.code == "RETRY_OUTCOME_UNKNOWN"
    assert "pb-abc-7" in err.value.message and "check open orders" in err.value.message
    assert script.methods().count("create_order") == 1


async def test_create_without_client_id_gets_a_deterministic_one() -> None:
    retrier, _, _ = make()
    script = Script(create_order=[echo_order(), echo_order()])
    first = await retrier(order_request(cid=None), script)
    second = await retrier(order_request(cid=None), script)
    retrier2, _, _ = make()
    again = await retrier2(order_request(cid=None), Script(create_order=[echo_order()]))
    assert first["clientOrderId"] != second["clientOrderId"]
    assert again["clientOrderId"] == first["clientOrderId"]
    assert len(first["clientOrderId"]) <= 36


async def test_a_held_back_create_resumes_with_the_lookup_it_owed() -> None:
    """RateWait (never sent) passes through; re-entry with the same request looks up first."""
    retrier, _, _ = make()
    request = order_request()
    script = Script(
        create_order=[ccxt.RequestTimeout("t")],
        fetch_order=[RateWait(Admission(3.0, "budget"), "GET /fapi/v1/order"), echo_order()],
    )
    with pytest.raises(RateWait):
        await retrier(request, script)
    order = await retrier(request, script)  # what the rate limiter does after waiting
    assert script.methods() == ["create_order", "fetch_order", "fetch_order"]
    assert order["clientOrderId"] == "pb-abc-7"


async def test_unknown_cancel_is_confirmed_by_lookup() -> None:
    retrier, seen, _ = make()
    cancel = Request("cancel_order", ("4001", SYM), {"params": {"clientOrderId": "c1"}}, symbol=SYM)
    script = Script(cancel_order=[ccxt.RequestTimeout("t")], fetch_order=[echo_order("canceled")])
    assert (await retrier(cancel, script))["status"] == "canceled"
    assert seen[-1].code == "RETRY_CANCEL_CONFIRMED"
    still_open = Request("cancel_order", ("4001", SYM), {"params": {}}, symbol=SYM)
    script = Script(
        cancel_order=[ccxt.ExchangeNotAvailable("x"), echo_order("canceled")],
        fetch_order=[echo_order("open")],
    )
    assert (await retrier(still_open, script))["status"] == "canceled"
    assert script.methods() == ["cancel_order", "fetch_order", "cancel_order"]
    assert script.calls[1].args == ("4001", SYM)  # no client id: looked up by order id


async def test_clock_skew_resyncs_once_then_retries() -> None:
    retrier, seen, _ = make()
    script = Script(
        fetch_balance=[ccxt.InvalidNonce(body(-1021)), {"ok": 1}],
        load_time_difference=[-250],
    )
    assert await retrier(Request("fetch_balance"), script) == {"ok": 1}
    assert script.methods() == ["fetch_balance", "load_time_difference", "fetch_balance"]
    assert seen[0].code == "RETRY_CLOCK_RESYNC" and "-250 ms" in seen[0].sentence
    twice = Script(
        create_order=[ccxt.InvalidNonce(body(-1021)), ccxt.InvalidNonce(body(-1021))],
        load_time_difference=[10],
    )
    with pytest.raises(ccxt.InvalidNonce):
        await retrier(order_request(), twice)
    assert twice.methods() == ["create_order", "load_time_difference", "create_order"]


async def test_a_stop_cuts_a_backoff_short() -> None:
    cfg = RetrySection(max_attempts=5, base_delay_s=30.0, max_delay_s=30.0, jitter_s=0.0)
    retrier, _, interrupter = make(cfg)
    script = Script(fetch_ticker=[ccxt.RequestTimeout("t"), {"last": 1}])
    task = asyncio.ensure_future(retrier(Request("fetch_ticker", (SYM,)), script))
    await asyncio.sleep(0.05)
    t0 = time.monotonic()
    interrupter.interrupt("stop: test")
    with pytest.raises(WaitInterrupted):
        await task
    assert time.monotonic() - t0 < 0.5
    assert len(script.calls) == 1


async def test_a_cancel_answered_unknown_order_is_looked_up() -> None:
    """-2011 on a cancel: already cancelled (e.g. a silently resent DELETE) or filled."""
    retrier, seen, _ = make()
    cancel = Request("cancel_order", ("4001", SYM), {"params": {"clientOrderId": "c2"}}, symbol=SYM)
    script = Script(
        cancel_order=[ccxt.OrderNotFound(body(-2011))], fetch_order=[echo_order("closed")]
    )
    assert (await retrier(cancel, script))["status"] == "closed"
    assert seen[-1].code == "RETRY_CANCEL_CONFIRMED" and "not open" in seen[-1].sentence
    gone = Request("cancel_order", ("4002", SYM), {"params": {}}, symbol=SYM)
    script = Script(
        cancel_order=[ccxt.OrderNotFound(body(-2011))],
        fetch_order=[ccxt.OrderNotFound(body(-2013))],
    )
    with pytest.raises(ccxt.OrderNotFound):
        await retrier(gone, script)
    assert script.methods() == ["cancel_order", "fetch_order"]
