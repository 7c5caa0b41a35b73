"""ScopeGate alone, with a fake call_next: what it lets through and how it explains denials."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import pytest

from perpbot.client.account import AccountView
from perpbot.client.request import OrderSpec, Request
from perpbot.client.validate import OrderRefused, wire_order
from perpbot.errors import PermissionDenied
from perpbot.events import Decision, EventBus
from perpbot.keys.gate import ScopeGate
from perpbot.keys.grant import Grant, Limits

BTC, ETH = "BTC/USDT:USDT", "ETH/USDT:USDT"
EXCHANGE = SimpleNamespace(
    markets={BTC: {"symbol": BTC, "id": "BTCUSDT", "contractSize": 1.0}, ETH: {"symbol": ETH}},
    markets_by_id={"BTCUSDT": [{"symbol": BTC}], "ETHUSDT": [{"symbol": ETH}]},
)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Request] = []

    async def __call__(self, request: Request) -> Any:
        self.sent.append(request)
        return {"ok": True}


def gate(
    commands: dict[str, set[str]] | None, account: AccountView | None = None, **limits: Any
) -> tuple[ScopeGate, list[Decision]]:
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    grant = None
    if commands is not None:
        grant = Grant(commands={c: frozenset(s) for c, s in commands.items()})
        grant = grant.with_limits(Limits(**limits))
    g = ScopeGate(
        grant=grant,
        profile="main" if grant else None,
        bus=bus,
        account=account or AccountView(),
        exchange=EXCHANGE,
    )
    return g, seen


def order(
    side: str = "buy",
    amount: float = 0.01,
    *,
    reduce_only: bool = False,
    symbol: str = BTC,
    price: float | None = 30000.0,
    command: str = "run",
) -> Request:
    spec = OrderSpec(
        symbol=symbol,
        side=side,
        type="limit" if price else "market",  # type: ignore[arg-type]
        amount=amount,
        price=price,
        reduce_only=reduce_only,
    )
    return Request.for_order(spec, command=command, profile="main")


def account(position: float, *orders: dict[str, Any]) -> AccountView:
    view = AccountView()
    view.set_positions([{"symbol": BTC, "info": {"positionAmt": str(position)}}])
    if orders:
        view.set_orders(BTC, list(orders))
    return view


async def deny(g: ScopeGate, request: Request) -> PermissionDenied:
    nxt = Recorder()
    with pytest.raises(PermissionDenied) as info:
        await g(request, nxt)
    assert nxt.sent == [], "a denied request must never reach call_next"
    assert info.value.exit_code == 3
    return info.value


async def test_allowed_request_passes_through() -> None:
    g, seen = gate({"run": {"read", "trade", "cancel"}})
    nxt = Recorder()
    assert await g(Request("fetch_balance", command="run"), nxt) == {"ok": True}
    await g(order(), nxt)
    await g(Request("cancel_order", ("1", BTC), symbol=BTC, command="run"), nxt)
    assert len(nxt.sent) == 3 and seen == []


async def test_missing_scope_is_explained_with_the_fix() -> None:
    g, seen = gate({"run": {"read", "cancel"}, "status": {"read"}})
    err = await deny(g, order())
    assert err.code == "SCOPE_MISSING"
    assert "'main'" in err.message and "'run'" in err.message and "trade" in err.message
    assert "perpbot keys scope main --command run --allow trade" in err.message
    assert seen[-1].action == "deny" and seen[-1].layer == "scope"
    assert seen[-1].data["missing"] == ["trade"] and seen[-1].data["method"] == "create_order"
    err = await deny(g, Request("cancel_all_orders", (BTC,), command="status"))
    assert "--command status --allow cancel" in err.message
    err = await deny(g, Request("fetch_balance", command="index"))
    assert "allows: nothing" in err.message


async def test_unmapped_methods_are_denied_even_for_paper() -> None:
    for commands in (None, {"run": {"read", "trade", "cancel", "leverage"}}):
        g, seen = gate(commands)
        err = await deny(g, Request("withdraw", ("USDT", 10, "addr"), command="run"))
        assert err.code == "SCOPE_UNMAPPED_METHOD" and seen[-1].code == err.code


async def test_paper_account_trades_without_a_grant() -> None:
    g, _ = gate(None)
    nxt = Recorder()
    await g(order(), nxt)
    await g(Request("set_leverage", (50, BTC), symbol=BTC), nxt)
    assert len(nxt.sent) == 2


async def test_reduce_only_grant_requires_reduce_only_orders() -> None:
    g, _ = gate({"run": {"read", "reduce", "cancel"}}, account(0.5))
    err = await deny(g, order("sell", 0.1))
    assert err.code == "SCOPE_REDUCE_ONLY" and "--command run --allow trade" in err.message
    await g(order("sell", 0.1, reduce_only=True), Recorder())


async def test_reduce_only_grant_denies_orders_that_could_grow_the_position() -> None:
    g, _ = gate({"run": {"read", "reduce"}}, account(0.5))
    assert (await deny(g, order("buy", 0.1, reduce_only=True))).code == "SCOPE_REDUCE_EXCEEDS"
    assert (await deny(g, order("sell", 0.6, reduce_only=True))).code == "SCOPE_REDUCE_EXCEEDS"
    flat, _ = gate({"run": {"read", "reduce"}}, account(0.0))
    assert (await deny(flat, order("sell", 0.1, reduce_only=True))).code == "SCOPE_REDUCE_EXCEEDS"
    # reduce-only orders already resting on that side use up the room
    resting = {
        "id": "9",
        "clientOrderId": "x",
        "symbol": BTC,
        "side": "sell",
        "type": "limit",
        "amount": 0.4,
        "remaining": 0.4,
        "price": 31000,
        "reduceOnly": True,
    }
    busy, _ = gate({"run": {"read", "reduce"}}, account(0.5, resting))
    assert (await deny(busy, order("sell", 0.2, reduce_only=True))).code == "SCOPE_REDUCE_EXCEEDS"
    await busy(order("sell", 0.1, reduce_only=True), Recorder())


async def test_reduce_only_grant_with_an_unread_account_is_denied() -> None:
    g, _ = gate({"kill": {"cancel", "reduce"}})
    err = await deny(g, order("sell", 0.1, reduce_only=True, command="kill"))
    assert err.code == "SCOPE_POSITION_UNKNOWN" and "not been read" in err.message


async def test_judged_by_the_arguments_sent_not_the_order_spec() -> None:
    g, _ = gate({"run": {"read", "reduce"}}, account(0.5))
    # the spec says reduce-only, but the params that would be sent do not: refused
    request = order("sell", 0.1, reduce_only=True)
    request.kwargs["params"] = {}
    with pytest.raises(OrderRefused) as info:
        await g(request, Recorder())
    assert info.value.code == "BAD_PARAM"
    raw = Request("create_order", ("BTCUSDT", "market", "sell", 0.1, None), command="run")
    assert (await deny(g, raw)).code == "SCOPE_REDUCE_ONLY"  # judged as sent
    # a raw call with a market id is judged on the unified symbol
    raw = Request(
        "create_order", ("BTCUSDT", "market", "buy", 0.1, None, {"reduceOnly": True}), command="run"
    )
    assert wire_order(raw).reduce_only and wire_order(raw).symbol == "BTCUSDT"
    assert (await deny(g, raw)).code == "SCOPE_REDUCE_EXCEEDS"


async def test_symbol_limit() -> None:
    g, _ = gate({"run": {"read", "trade", "leverage"}}, symbols=(BTC,))
    err = await deny(g, order(symbol=ETH))
    assert err.code == "SCOPE_SYMBOL" and f"--symbols {BTC},{ETH}" in err.message
    await deny(g, Request("set_leverage", (3, ETH), symbol=ETH, command="run"))
    await deny(g, Request("create_order", ("ETHUSDT", "limit", "buy", 1, 2000), command="run"))
    nxt = Recorder()
    await g(order(symbol=BTC), nxt)
    await g(Request("create_order", ("BTCUSDT", "limit", "buy", 0.01, 30000), command="run"), nxt)
    await g(Request("fetch_ticker", (ETH,), symbol=ETH, command="run"), nxt)  # reads are fine
    assert len(nxt.sent) == 3


async def test_max_notional_and_leverage_limits() -> None:
    g, _ = gate({"run": {"read", "trade", "leverage"}}, max_notional=1000.0, max_leverage=5.0)
    err = await deny(g, order(amount=0.1, price=30000.0))
    assert err.code == "SCOPE_MAX_NOTIONAL" and "--max-notional 3000" in err.message
    market = order(amount=0.01, price=None)
    assert (await deny(g, market)).code == "SCOPE_NOTIONAL_UNKNOWN"
    assert market.order is not None
    market.order.decided_price, market.order.decided_at = 30000.0, time.time()
    # a decided price alone is not trusted: the mark must be known
    assert (await deny(g, market)).code == "SCOPE_NOTIONAL_UNKNOWN"
    marks = {BTC: 30000.0}
    g.prices = lambda symbol: [marks.get(symbol)]
    await g(market, Recorder())  # 300 notional at the mark
    market.order.decided_price = 1.0  # "decided at 1.0": valued at the mark all the same
    await g(market, Recorder())
    marks[BTC] = 200000.0  # the worse of decision and mark: 2000 notional
    err = await deny(g, market)
    assert err.code == "SCOPE_MAX_NOTIONAL" and "valued at 200000" in err.message
    err = await deny(g, Request("set_leverage", (10, BTC), symbol=BTC, command="run"))
    assert err.code == "SCOPE_MAX_LEVERAGE" and "--max-leverage 10" in err.message
    await g(Request("set_leverage", (5, BTC), symbol=BTC, command="run"), Recorder())
    # a reduce-only order is never limited by notional: it cannot add risk
    big = gate({"run": {"read", "trade"}}, account(1.0), max_notional=10.0)[0]
    await big(order("sell", 1.0, reduce_only=True), Recorder())


async def test_positions_seen_passing_through_inform_a_command_without_a_runner() -> None:
    g, _ = gate({"kill": {"read", "cancel", "reduce"}})
    positions = [{"symbol": BTC, "info": {"positionAmt": "0.3"}}]

    async def answer(request: Request) -> Any:
        return positions

    assert await g(Request("fetch_positions", (None,), command="kill"), answer) == positions
    await g(order("sell", 0.3, reduce_only=True, command="kill"), Recorder())
    err = await deny(g, order("sell", 0.4, reduce_only=True, command="kill"))
    assert err.code == "SCOPE_REDUCE_EXCEEDS"
    positions = []  # a partial read of ETH keeps what is known of BTC
    await g(Request("fetch_positions", ([ETH],), command="kill"), answer)
    await g(order("sell", 0.3, reduce_only=True, command="kill"), Recorder())
