"""The transport's before-hooks over real HTTP (ccxt against the simulator on loopback).

A hook that must wait is awaited before the request leaves, and the hooks after it run once
the wait is over; a hook that refuses keeps the request off the wire, whether or not an
earlier hook waited. The simulator's own weight count is the truth of what left.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from perpbot.client.request import HttpRecord, Request
from perpbot.client.transport import make_exchange
from perpbot.errors import PermissionDenied

SYM = "BTC/USDT:USDT"


def weight_sent(sim: Any) -> tuple[float, int]:
    """(window start, weight used) as the simulator counts it for 127.0.0.1."""
    ip = sim.server.engine.limits.ips.get("127.0.0.1")
    return (ip.weight.start, ip.weight.used) if ip is not None else (0.0, 0)


def one_more(before: tuple[float, int], after: tuple[float, int], cost: int) -> bool:
    """Whether exactly one request of ``cost`` left between the two counts."""
    if after[0] == before[0]:
        return after[1] == before[1] + cost
    return after[1] == cost  # the window rolled over in between


async def _exchange(sim: Any) -> Any:
    key, secret = sim.create_account()
    ex = make_exchange("sim", api_key=key, secret=secret, base_url=sim.base_url)
    await ex.load_markets()
    return ex


async def test_a_waiting_hook_is_awaited_then_the_later_hooks_run_then_it_leaves(sim: Any) -> None:
    ex = await _exchange(sim)
    seen: list[tuple[str, Any]] = []

    async def wait_then_note() -> None:
        await asyncio.sleep(0.01)
        seen.append(("waited", weight_sent(sim)))

    def first(record: HttpRecord, request: Request | None) -> Any:
        seen.append(("first", record.path))
        return wait_then_note()

    def last(record: HttpRecord, request: Request | None) -> None:
        seen.append(("last", weight_sent(sim)))

    ex.perpbot_observers.add_before(last, last=True)
    ex.perpbot_observers.add_before(first)
    try:
        before = weight_sent(sim)
        ticker = await ex.fetch_ticker(SYM)
        after = weight_sent(sim)
    finally:
        await ex.close()
    assert ticker["symbol"] == SYM
    # in order, and nothing had left before the last hook ran
    assert seen == [("first", "/fapi/v1/ticker/24hr"), ("waited", before), ("last", before)]
    assert one_more(before, after, 1)  # then it left, once


@pytest.mark.parametrize("first_waits", [False, True])
async def test_a_refusing_hook_keeps_the_request_off_the_wire(sim: Any, first_waits: bool) -> None:
    ex = await _exchange(sim)
    waited: list[bool] = []

    async def wait() -> None:
        await asyncio.sleep(0.01)
        waited.append(True)

    def first(record: HttpRecord, request: Request | None) -> Any:
        return wait() if first_waits else None

    def refuse(record: HttpRecord, request: Request | None) -> None:
        raise PermissionDenied(f"refused {record.path}", code="TEST_REFUSED")

    ex.perpbot_observers.add_before(refuse, last=True)
    ex.perpbot_observers.add_before(first)
    try:
        before = weight_sent(sim)
        with pytest.raises(PermissionDenied, match="refused /fapi/v1/ticker/24hr"):
            await ex.fetch_ticker(SYM)
        after = weight_sent(sim)
    finally:
        await ex.close()
    assert waited == ([True] if first_waits else [])
    assert after == before  # nothing left
