"""LongWaitCutter with a real Interrupter and EventBus: long holds are cut, short ones waited."""

from __future__ import annotations

import asyncio
import time

import pytest

from perpbot.client.waits import Interrupter, WaitInterrupted
from perpbot.events import Decision, EventBus
from perpbot.kill.describe import describe_waits
from perpbot.kill.waitcut import LongWaitCutter


async def _held(bus: EventBus, interrupter: Interrupter, wait_s: float, reason: str) -> None:
    """What the rate limiter does: announce the wait, then sleep through the interrupter."""
    data = {"wait_s": wait_s, "reason": reason, "request": "cancel_all_orders BTC/USDT:USDT"}
    bus.publish(Decision("ratelimit", "wait", "RATE_WAIT", "holding", data))
    await interrupter.sleep(wait_s)


async def test_a_hold_past_the_deadline_is_cut_at_once_and_recorded() -> None:
    bus, interrupter = EventBus(), Interrupter()
    with LongWaitCutter(bus, interrupter, deadline_s=2.0) as cutter:
        started = time.monotonic()
        with pytest.raises(WaitInterrupted, match="not waiting 28 s"):
            await asyncio.wait_for(_held(bus, interrupter, 28.0, "retry_after"), 5.0)
        assert time.monotonic() - started < 1.0
        await _held(bus, interrupter, 0.05, "budget")  # ends within the deadline: waited
    assert [c["reason"] for c in cutter.cut] == ["retry_after"]
    assert [w["reason"] for w in cutter.waited] == ["budget"]
    (line,) = describe_waits(cutter.cut, [])
    assert line.startswith("did not wait out the exchange's Retry-After (after a 429), which ")
    assert "cancel_all_orders BTC/USDT:USDT (not sent)" in line
    # once the kill is done acting, the cutter is gone: waits wait again
    await _held(bus, interrupter, 0.05, "retry_after")
    assert len(cutter.cut) == 1
