"""Pipeline routes: a layer that would only let a request through is skipped for it, and only
then. The guards' ``passes`` must never route a request past a check it would fail."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from perpbot.client.account import AccountView
from perpbot.client.pipeline import CallNext, Pipeline
from perpbot.client.request import METHOD_CLASS, HttpRecord, OrderSpec, Request
from perpbot.client.transport import HttpObservers
from perpbot.client.waits import Interrupter, WaitInterrupted
from perpbot.errors import KillSwitchActive, PermissionDenied
from perpbot.events import EventBus
from perpbot.keys.gate import ScopeGate
from perpbot.keys.grant import Grant, Limits
from perpbot.keys.scopes import GRANTABLE
from perpbot.kill.gate import KillGate
from perpbot.kill.sentinel import new_entry, write_sentinel
from tests.unit.keys.test_keys_gate import EXCHANGE, Recorder

BTC = "BTC/USDT:USDT"


class Counting:
    """A layer that counts the requests it sees; ``passing`` names the methods it skips."""

    def __init__(self, name: str, passing: set[str] | None) -> None:
        self.name = name
        self.passing = passing
        self.seen: list[str] = []

    def __call__(self, request: Request, call_next: CallNext) -> Any:
        self.seen.append(request.method)
        return call_next(request)


def with_passes(layer: Counting) -> Counting:
    passing = layer.passing or set()
    layer.passes = lambda request: request.method in passing  # type: ignore[attr-defined]
    return layer


async def test_a_layer_is_skipped_only_for_the_requests_it_passes() -> None:
    plain = Counting("plain", None)  # no ``passes``: sees everything
    reads = with_passes(Counting("reads-pass", {"fetch_ticker"}))
    sent: list[str] = []

    async def terminal(request: Request) -> str:
        sent.append(request.method)
        return "ok"

    pipeline = Pipeline([plain, reads], terminal, EventBus())
    for method in ("fetch_ticker", "create_order", "fetch_ticker"):
        assert await pipeline.call(Request(method)) == "ok"
    assert plain.seen == ["fetch_ticker", "create_order", "fetch_ticker"]
    assert reads.seen == ["create_order"]
    assert sent == ["fetch_ticker", "create_order", "fetch_ticker"]
    assert [layer.name for layer in pipeline.route(Request("fetch_ticker"))] == ["plain"]
    # the route is per method *and* command
    assert [layer.name for layer in pipeline.route(Request("create_order"))] == [
        "plain",
        "reads-pass",
    ]


GRANTS: dict[str, Grant | None] = {
    "paper": None,
    "nothing": Grant(commands={}),
    "read only": Grant(commands={"run": frozenset({"read"})}),
    "reduce and cancel": Grant(commands={"run": frozenset({"cancel", "reduce"})}),
    "everything, limited": Grant(commands={"run": frozenset(GRANTABLE)}).with_limits(
        Limits(symbols=("ETH/USDT:USDT",), max_notional=10.0, max_leverage=2.0)
    ),
}
ARGS: dict[str, tuple[Any, ...]] = {  # arguments that a per-request check would refuse
    "create_order": (BTC, "market", "buy", 100.0),
    "set_leverage": (50, BTC),
    "set_margin_mode": ("isolated", BTC),
}


async def test_the_scope_gate_routes_past_only_what_it_would_allow_whatever_the_arguments() -> None:
    routed: dict[str, set[str]] = {}
    for grant_name, grant in GRANTS.items():
        gate = ScopeGate(
            grant=grant, profile="main" if grant else None, bus=EventBus(), account=AccountView(),
            exchange=EXCHANGE,
        )  # fmt: skip
        routed[grant_name] = set()
        for method in [*METHOD_CLASS, "withdraw", "transfer", "fetch_deposits"]:
            request = Request(method, ARGS.get(method, (BTC,)), symbol=BTC, command="run")
            if not gate.passes(request):
                continue
            routed[grant_name].add(method)
            nxt = Recorder()
            await gate(request, nxt)  # raises PermissionDenied if it had anything to refuse
            assert nxt.sent == [request]
    judged_each_time = {"create_order", "fetch_positions", "set_leverage", "set_margin_mode"}
    reads = {m for m, c in METHOD_CLASS.items() if c == "read"} - {"fetch_positions"}
    cancels = {m for m, c in METHOD_CLASS.items() if c == "cancel"}
    assert routed["paper"] == routed["everything, limited"] == reads | cancels
    assert routed["read only"] == reads
    assert routed["reduce and cancel"] == cancels
    assert routed["nothing"] == set()
    assert not judged_each_time & set().union(*routed.values())


async def test_a_method_the_grant_lacks_is_judged_and_denied_every_time() -> None:
    grant = Grant(commands={"run": frozenset({"cancel"})})
    gate = ScopeGate(grant=grant, profile="main", bus=EventBus(), account=AccountView())
    sent: list[str] = []

    async def terminal(request: Request) -> None:
        sent.append(request.method)

    pipeline = Pipeline([gate], terminal, EventBus())
    for _ in range(3):  # the route is cached: the gate is on it every time
        with pytest.raises(PermissionDenied):
            await pipeline.call(Request("fetch_ticker", (BTC,), symbol=BTC, command="run"))
    await pipeline.call(Request("cancel_order", ("1", BTC), symbol=BTC, command="run"))
    assert sent == ["cancel_order"]
    assert [layer.name for layer in pipeline.route(Request("cancel_order", command="run"))] == []


async def test_reads_skip_the_kill_door_but_its_wire_hook_still_notices_a_new_switch(
    state_home: Path,
) -> None:
    interrupter = Interrupter()
    gate = KillGate(EventBus(), interrupter, profile="main", run_id="r1", strategy="grid")
    observers = HttpObservers()
    gate.watch_wire(observers)
    assert gate.passes(Request("fetch_ticker")) and gate.passes(Request("cancel_order"))
    assert not gate.passes(Request.for_order(OrderSpec(BTC, "buy", "market", 0.01)))

    sleeper = asyncio.ensure_future(interrupter.sleep(60))  # a backoff in progress
    await asyncio.sleep(0.01)
    write_sentinel(new_entry("halt", "stop waiting"))
    await asyncio.sleep(0.03)  # past the peek interval
    read = Request("fetch_ticker", (BTC,), symbol=BTC)
    for hook in observers.before:  # a read's HTTP request leaving: the last look peeks
        hook(HttpRecord("GET", "http://x/fapi/v1/ticker/24hr", "/fapi/v1/ticker/24hr"), read)
    with pytest.raises(WaitInterrupted, match="kill switch: stop waiting"):
        await asyncio.wait_for(sleeper, 1.0)
    order = Request.for_order(OrderSpec(BTC, "buy", "market", 0.01))
    with pytest.raises(KillSwitchActive):
        for hook in observers.before:
            hook(HttpRecord("POST", "http://x/fapi/v1/order", "/fapi/v1/order"), order)
