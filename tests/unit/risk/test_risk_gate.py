"""RiskGate as a layer alone, with a fake ``call_next``: decisions, flags, reservations."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from perpbot.client.request import OrderSpec, Request
from perpbot.client.setup import Credentials, Setup
from perpbot.client.validate import OrderRefused
from perpbot.config import ExchangeSection, StrategyFile
from perpbot.errors import RiskRejected
from perpbot.events import Decision, EventBus
from perpbot.risk.gate import RiskGate, build_risk_gate, spec_from_request
from perpbot.risk.index import IndexReading

BTC = "BTC/USDT:USDT"


class FakeExchange:
    def market(self, symbol: str) -> dict[str, Any]:
        return {"symbol": symbol, "contractSize": 1.0}


def make_setup(risk: dict[str, Any] | None = None, command: str = "run") -> Setup:
    cfg = StrategyFile.model_validate(
        {
            "strategy": {"name": "t", "file": "t.py", "symbols": [BTC]},
            "risk": {"accept_no_limits": True, **(risk or {})},  # defaults: test_risk_defaults
        }
    )
    return Setup(
        exchange=ExchangeSection(),
        command=command,
        run_id="r1",
        bus=EventBus(),
        credentials=Credentials(api_key=None, secret=None),
        config=cfg,
    )


def gate_for(setup: Setup) -> tuple[RiskGate, list[Decision]]:
    gate = build_risk_gate(setup, FakeExchange())
    assert isinstance(gate, RiskGate)
    seen: list[Decision] = []
    setup.bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    return gate, seen


class Exchange:
    """call_next: answers like ccxt, or raises what it is told to."""

    def __init__(self, raises: BaseException | None = None, status: str = "open") -> None:
        self.raises = raises
        self.status = status
        self.sent: list[Request] = []

    async def __call__(self, request: Request) -> Any:
        self.sent.append(request)
        if self.raises is not None:
            raise self.raises
        if request.method == "create_order":
            o = request.order
            assert o is not None
            return {
                "id": "1",
                "clientOrderId": o.client_order_id,
                "symbol": o.symbol,
                "side": o.side,
                "type": o.type,
                "amount": o.amount,
                "remaining": o.amount if self.status == "open" else 0.0,
                "filled": 0.0 if self.status == "open" else o.amount,
                "price": o.price,
                "status": self.status,
                "reduceOnly": o.reduce_only,
            }
        if request.method == "cancel_order":
            return {"id": "1", "clientOrderId": "c1", "status": "canceled", "filled": 0.0}
        return {"ok": True}


def req(**kw: Any) -> Request:
    base: dict[str, Any] = {"symbol": BTC, "side": "buy", "type": "limit", "amount": 0.01}
    base["price"] = 60000.0
    base.update(kw)
    return Request.for_order(OrderSpec(**base), command="run")


async def test_rejection_is_published_then_raised_with_the_same_sentence() -> None:
    setup = make_setup({"max_order_notional": 100})
    gate, seen = gate_for(setup)
    ex = Exchange()
    with pytest.raises(RiskRejected) as info:
        await gate(req(client_order_id="c1"), ex)
    assert not ex.sent, "a refused order must not reach the exchange"
    d = seen[-1]
    assert (d.layer, d.action, d.code) == ("risk", "reject", "RISK_MAX_ORDER_NOTIONAL")
    assert info.value.code == d.code and info.value.message == d.sentence
    assert "600.00 USDT" in d.sentence and d.data["check"] == "order_notional"
    assert "c1" not in setup.account.orders  # no reservation left behind
    assert gate.state.rejections[-1]["code"] == "RISK_MAX_ORDER_NOTIONAL"


@pytest.mark.parametrize(
    ("spec_kw", "params_out"),
    [
        ({"reduce_only": True, "side": "sell"}, {"reduceOnly": True}),
        ({"post_only": True}, {"postOnly": True}),
        ({}, {}),
    ],
)
async def test_flags_reach_the_exchange_consistently(
    spec_kw: dict[str, Any], params_out: dict[str, Any]
) -> None:
    setup = make_setup()
    setup.account.set_positions([{"symbol": BTC, "info": {"positionAmt": "1"}}])
    gate, _ = gate_for(setup)
    ex = Exchange()
    await gate(req(client_order_id="c9", **spec_kw), ex)
    sent = ex.sent[0].params
    assert {k: v for k, v in sent.items() if k != "clientOrderId"} == params_out
    assert sent["clientOrderId"] == "c9"


@pytest.mark.parametrize(
    ("spec_kw", "params_in"),
    [
        ({"reduce_only": True, "side": "sell"}, {}),  # the spec says reduce-only, the wire not
        ({"post_only": True}, {"timeInForce": "GTC"}),
        ({}, {"reduceOnly": True}),  # the wire says reduce-only, the spec not
    ],
)
async def test_params_that_disagree_with_the_spec_are_refused(
    spec_kw: dict[str, Any], params_in: dict[str, Any]
) -> None:
    setup = make_setup()
    setup.account.set_positions([{"symbol": BTC, "info": {"positionAmt": "1"}}])
    gate, _ = gate_for(setup)
    ex = Exchange()
    r = req(client_order_id="c9", **spec_kw)
    r.kwargs["params"] = dict(params_in)
    with pytest.raises(OrderRefused) as info:
        await gate(r, ex)
    assert info.value.code == "BAD_PARAM" and "order spec says" in info.value.message
    assert not ex.sent


def test_raw_create_order_is_understood() -> None:
    r = Request(
        method="create_order",
        args=(BTC, "LIMIT", "SELL", 0.5, 61000),
        kwargs={"params": {"timeInForce": "GTX", "reduceOnly": True, "clientOrderId": "x"}},
        symbol=BTC,
    )
    s = spec_from_request(r)
    assert (s.symbol, s.side, s.type, s.amount, s.price) == (BTC, "sell", "limit", 0.5, 61000.0)
    assert s.post_only and s.reduce_only and s.time_in_force is None
    assert s.client_order_id == "x"


async def test_reservation_counts_while_in_flight_and_follows_the_answer() -> None:
    setup = make_setup()
    account = setup.account
    account.set_positions([{"symbol": BTC, "info": {"positionAmt": "0.02"}}])
    gate, _ = gate_for(setup)
    seen_room: list[float] = []

    class Slow(Exchange):
        async def __call__(self, request: Request) -> Any:
            seen_room.append(account.reduce_only_room(BTC, "sell"))
            return await super().__call__(request)

    await gate(req(side="sell", reduce_only=True, amount=0.015, client_order_id="a"), Slow())
    assert seen_room == [pytest.approx(0.005)]  # counted before the answer came
    assert not account.orders["a"].inflight
    with pytest.raises(RiskRejected) as info:
        await gate(req(side="sell", reduce_only=True, amount=0.01, client_order_id="b"), Slow())
    assert info.value.code == "RISK_REDUCE_ONLY_EXCEEDS"


@pytest.mark.parametrize(
    ("error", "kept"),
    [
        (ccxt.InvalidOrder("-2022"), False),  # refused for certain: released
        (RiskRejected("downstream", code="X"), False),
        (ccxt.RequestTimeout("lost"), True),  # unknown outcome: still counted
        (ccxt.NetworkError("reset"), True),
    ],
)
async def test_reservation_after_a_failure(error: BaseException, kept: bool) -> None:
    setup = make_setup()
    setup.account.set_positions([{"symbol": BTC, "info": {"positionAmt": "0.02"}}])
    gate, _ = gate_for(setup)
    with pytest.raises(type(error)):
        await gate(req(side="sell", reduce_only=True, client_order_id="z"), Exchange(raises=error))
    assert ("z" in setup.account.orders) is kept
    if kept:
        assert not setup.account.orders["z"].inflight  # settled by the next order list


async def test_cancels_are_counted_never_refused() -> None:
    setup = make_setup({"max_cancel_rate": 2})
    gate, seen = gate_for(setup)
    ex = Exchange()
    for _ in range(3):
        r = Request(method="cancel_order", args=("1", BTC), symbol=BTC)
        await gate(r, ex)
    assert len(ex.sent) == 3
    with pytest.raises(RiskRejected) as info:
        await gate(req(client_order_id="n1"), ex)
    assert info.value.code == "RISK_CANCEL_RATE"
    assert seen[-1].code == "RISK_CANCEL_RATE"


async def test_own_leverage_change_is_remembered() -> None:
    setup = make_setup()
    gate, _ = gate_for(setup)
    await gate(Request(method="set_leverage", args=(7, BTC), symbol=BTC), Exchange())
    assert gate.state.leverage[BTC] == 7.0
    assert gate.state.own_requests[BTC]["leverage"] == 7.0
    await gate(Request(method="set_margin_mode", args=("ISOLATED", BTC), symbol=BTC), Exchange())
    assert gate.state.own_requests[BTC]["margin_mode"] == "isolated"


async def test_unhealthy_index_holds_the_bot_reduce_only() -> None:
    setup = make_setup({"price_band_pct": 1})
    gate, _ = gate_for(setup)
    gate.state.index[BTC] = IndexReading(BTC, 60000.0, False, 1, 3, "1 good of 3", (), 0.0)
    gate.state.hold_reduce_only(BTC, "the BTC/USDT:USDT index has 1 good source of 3")
    with pytest.raises(RiskRejected) as info:
        await gate(req(client_order_id="o"), Exchange())
    assert info.value.code == "RISK_REDUCE_ONLY_MODE"
    assert "1 good source of 3" in info.value.message


@pytest.mark.parametrize("command", ["kill", "index", "status"])
def test_exempt_commands_get_no_gate(command: str) -> None:
    assert build_risk_gate(make_setup(command=command), FakeExchange()) is None


def test_disabled_or_configless_gets_no_gate() -> None:
    assert build_risk_gate(make_setup({"enabled": False}), FakeExchange()) is None
    setup = make_setup()
    setup.config = None
    assert build_risk_gate(setup, FakeExchange()) is None


async def test_the_kill_switchs_flatten_is_never_judged() -> None:
    """After a cancel-all the room for reduce-only orders is unknown; the kill switch's own
    reduce-only orders must go anyway (the exchange enforces reduce-only)."""
    setup = make_setup({"max_order_notional": 1})
    setup.account.set_positions([{"symbol": BTC, "info": {"positionAmt": "0.02"}}])
    setup.account.order_placed(
        {"clientOrderId": "x", "symbol": BTC, "side": "sell", "amount": 0.02,
         "remaining": 0.02, "status": "open", "reduceOnly": True}
    )  # fmt: skip
    setup.account.symbol_cleared(BTC)
    gate, _ = gate_for(setup)
    with pytest.raises(RiskRejected):
        await gate(req(side="sell", reduce_only=True, amount=0.02, client_order_id="s"), Exchange())
    ex = Exchange()
    flatten = req(side="sell", type="market", reduce_only=True, amount=0.02, intent="kill-flatten")
    flatten.order.price = None  # type: ignore[union-attr]
    await gate(flatten, ex)
    assert ex.sent and ex.sent[0].params["reduceOnly"] is True
