"""KillGate alone, with a fake ``call_next``: what passes at each level, and the waits it cuts."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from perpbot.client.request import HttpRecord, OrderSpec, Request
from perpbot.client.transport import HttpObservers
from perpbot.client.waits import Interrupter, WaitInterrupted
from perpbot.errors import KillSwitchActive, PermissionDenied
from perpbot.events import Decision, EventBus
from perpbot.kill.gate import KillGate
from perpbot.kill.sentinel import new_entry, write_sentinel

SYM = "BTC/USDT:USDT"


def _order(reduce_only: bool) -> Request:
    spec = OrderSpec(SYM, "sell", "limit", 0.01, 60000.0, reduce_only=reduce_only)
    return Request.for_order(spec)


REQUESTS: dict[str, Request] = {
    "read": Request("fetch_ticker", (SYM,), symbol=SYM),
    "cancel": Request("cancel_order", ("1", SYM), symbol=SYM),
    "cancel_all": Request("cancel_all_orders", (SYM,), symbol=SYM),
    "countdown": Request("fapiprivate_post_countdowncancelall", ({},), symbol=SYM),
    # the user stream's listenKey keepalive (a stream's own REST, perpbot.streams.exchange)
    "listen_key": Request("stream_rest", ("http://x/fapi/v1/listenKey", "PUT")),
    "order": _order(False),
    "reduce_only": _order(True),
    "reduce_only_param": Request(
        "create_order", (SYM, "market", "sell", 0.01), {"params": {"reduceOnly": True}}
    ),
    "leverage": Request("set_leverage", (5, SYM), symbol=SYM),
    "margin_mode": Request("set_margin_mode", ("isolated", SYM), symbol=SYM),
}
ALWAYS = {"read", "cancel", "cancel_all", "countdown", "listen_key"}
PASSES = {
    "halt": ALWAYS,
    "cancel": ALWAYS,
    "flatten": ALWAYS | {"reduce_only", "reduce_only_param"},
}


def _gate(bus: EventBus | None = None, **names: Any) -> tuple[KillGate, Interrupter]:
    interrupter = Interrupter()
    names.setdefault("profile", "main")
    names.setdefault("run_id", "r1")
    names.setdefault("strategy", "grid")
    return KillGate(bus or EventBus(), interrupter, **names), interrupter


async def _through(gate: KillGate, request: Request) -> bool:
    async def call_next(req: Request) -> str:
        return "sent"

    try:
        return await gate(request, call_next) == "sent"
    except KillSwitchActive:
        return False


async def test_everything_passes_while_the_switch_is_clear(state_home: Path) -> None:
    gate, interrupter = _gate()
    for request in REQUESTS.values():
        assert await _through(gate, request)
    assert not interrupter.interrupted


@pytest.mark.parametrize("level", ["halt", "cancel", "flatten"])
async def test_what_passes_at_each_level(state_home: Path, level: str) -> None:
    write_sentinel(new_entry(level, "drill"))
    gate, _ = _gate()
    passed = {name for name, req in REQUESTS.items() if await _through(gate, req)}
    assert passed == PASSES[level]


async def test_a_refusal_is_exit_4_with_a_decision_naming_the_switch(state_home: Path) -> None:
    bus = EventBus()
    seen: list[Any] = []
    bus.subscribe(seen.append)
    write_sentinel(new_entry("cancel", "exchange outage"))
    gate, _ = _gate(bus)

    async def call_next(req: Request) -> None:
        raise AssertionError("must not be sent")

    with pytest.raises(KillSwitchActive) as info:
        await gate(REQUESTS["order"], call_next)
    assert info.value.exit_code == 4 and info.value.code == "KILL_ACTIVE"
    (decision,) = [e for e in seen if isinstance(e, Decision)]
    assert decision.layer == "kill" and decision.action == "deny"
    assert decision.code == "KILL_ACTIVE"
    assert "refuses create_order BTC/USDT:USDT" in decision.sentence
    assert "exchange outage" in decision.sentence and "perpbot kill --clear" in decision.sentence
    assert decision.data["level"] == "cancel"


async def test_scoped_switches_only_stop_the_bots_they_name(state_home: Path) -> None:
    write_sentinel(new_entry("cancel", "that profile", scope="profile:other"))
    write_sentinel(new_entry("cancel", "that run", scope="run:r2"))
    gate, _ = _gate()
    assert await _through(gate, REQUESTS["order"])
    write_sentinel(new_entry("cancel", "this strategy", scope="run:grid"))
    assert not await _through(gate, REQUESTS["order"])


async def test_waits_in_progress_are_cut_short_later_waits_are_not(state_home: Path) -> None:
    gate, interrupter = _gate()
    sleeper = asyncio.ensure_future(interrupter.sleep(60))
    await asyncio.sleep(0.01)
    write_sentinel(new_entry("halt", "stop waiting"))
    await _through(gate, REQUESTS["read"])  # any request makes the gate look
    with pytest.raises(WaitInterrupted, match="kill switch: stop waiting"):
        await asyncio.wait_for(sleeper, 1.0)
    await interrupter.sleep(0.001)  # the watchdog's own cancels may still wait for budget


async def test_the_last_look_refuses_an_order_that_passed_the_door_earlier(
    state_home: Path,
) -> None:
    observers = HttpObservers()
    gate, _ = _gate()
    gate.watch_wire(observers)

    async def limiter_hook(record: HttpRecord, request: Request | None) -> None:
        return None

    observers.add_before(limiter_hook)  # a hook registered after the gate's

    async def transport(request: Request) -> str:
        # the request passed the door; the switch trips while it waits below the gate
        write_sentinel(new_entry("cancel", "tripped meanwhile"))
        for hook in observers.before:  # as the transport runs them: None or an awaitable
            pending = hook(HttpRecord("POST", "http://x/fapi/v1/order", "/fapi/v1/order"), request)
            if pending is not None:
                await pending
        return "sent"

    with pytest.raises(KillSwitchActive, match="as it was about to leave"):
        await gate(REQUESTS["order"], transport)
    assert observers.before[-1] == gate.last_look  # kept after every other hook
    assert await gate(REQUESTS["cancel"], transport) == "sent"


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_http_that_did_not_come_through_the_pipeline_never_leaves(
    state_home: Path, method: str
) -> None:
    """No switch stands: HTTP with no pipeline request behind it (code that reached the
    ccxt object itself) is refused all the same, and said."""
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    gate, _ = _gate(bus)
    record = HttpRecord(method, "http://x/fapi/v1/order", "/fapi/v1/order")
    with pytest.raises(PermissionDenied, match="did not come through perpbot's guarded"):
        gate.last_look(record, None)
    assert [d.code for d in seen] == ["UNGUARDED_HTTP"]
    gate.last_look(record, REQUESTS["read"])  # the same HTTP behind a pipeline request passes
