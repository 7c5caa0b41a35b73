"""The run wiring: a stop cuts waits short; the clean-up may wait again; status gets `rate`."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from perpbot.client.waits import Interrupter, WaitInterrupted
from perpbot.ratelimit.plugin import attach


def runner_like(interrupter: Interrupter) -> Any:
    """The attributes of perpbot.app.lifecycle.Runner the plugin uses."""
    return SimpleNamespace(
        stop_event=asyncio.Event(),
        end_reason="interrupted",
        interrupter=interrupter,
        on_connected=[],
        background=[],
        before_stop=[],
        tick_providers=[],
        client=SimpleNamespace(pipeline=SimpleNamespace(layer=lambda name: None)),
    )


async def test_a_stop_cuts_waits_short_and_cleanup_may_wait_again() -> None:
    interrupter = Interrupter()
    runner = runner_like(interrupter)
    attach(runner)
    [watch] = runner.background
    watcher = asyncio.ensure_future(watch(runner))
    held = asyncio.ensure_future(interrupter.sleep(30))
    await asyncio.sleep(0.01)
    runner.stop_event.set()
    with pytest.raises(WaitInterrupted) as err:
        await asyncio.wait_for(held, 1.0)
    assert err.value.reason == "stop: interrupted"
    await watcher
    for hook in runner.before_stop:
        await hook(runner)
    assert not interrupter.interrupted  # the final cancels may wait for budget again
    await interrupter.sleep(0.01)


async def test_a_kill_interrupt_is_left_alone() -> None:
    interrupter = Interrupter()
    runner = runner_like(interrupter)
    attach(runner)
    interrupter.interrupt("kill: operator")
    runner.stop_event.set()
    await runner.background[0](runner)
    for hook in runner.before_stop:
        await hook(runner)
    assert interrupter.reason == "kill: operator"


async def test_the_rate_section_is_provided_once_connected() -> None:
    limiter = SimpleNamespace(snapshot=lambda wait: {"weight_used": 3})
    runner = runner_like(Interrupter())
    runner.client = SimpleNamespace(pipeline=SimpleNamespace(layer=lambda name: limiter))
    attach(runner)
    for hook in runner.on_connected:
        await hook(runner)
    assert [p() for p in runner.tick_providers] == [{"rate": {"weight_used": 3}}]
