"""The strategy's events and callbacks without an exchange: the ledger and run state as
the only source, a real runtime and a port that records the calls it carries."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from perpbot.client.request import OrderSpec
from perpbot.engine import Strategy
from perpbot.engine.api import StrategyContext
from perpbot.engine.feed import EventFeed
from perpbot.engine.ledger import Ledger
from perpbot.engine.runtime import StrategyRuntime
from perpbot.engine.state import PositionSnapshot

BTC = "BTC/USDT:USDT"


class Entry:
    level, reason, code, source, scope = "halt", "test", "KILL_MANUAL", "cli", "all"


def feed_with(ledger: Ledger, positions: dict[str, PositionSnapshot], kill: list[Any]) -> Any:
    feed = EventFeed(ledger, lambda: positions, lambda: kill[0])
    feed.prime()
    return feed


def spec(cid: str, amount: float = 0.002) -> OrderSpec:
    return OrderSpec(symbol=BTC, side="buy", type="limit", amount=amount, price=50000.0,
                     client_order_id=cid)  # fmt: skip


def test_one_batch_is_kill_fills_orders_positions_in_that_order() -> None:
    ledger, positions, kill = Ledger(), {}, [None]
    feed = feed_with(ledger, positions, kill)
    ledger.placed(spec("pb-x-0"), {"id": "1", "status": "open", "filled": 0.0})
    ledger.update("pb-x-0", {"status": "open", "filled": 0.001})
    ledger.add_trades(BTC, [{"id": "t1", "order": "1", "side": "buy", "price": 50000.0,
                             "amount": 0.001, "timestamp": 1}])  # fmt: skip
    ledger.update("pb-x-0", {"status": "closed", "filled": 0.002})
    ledger.reject("RISK_MAX_NOTIONAL", spec=spec("pb-x-1", 9.0), sentence="too big")
    positions[BTC] = PositionSnapshot(symbol=BTC, amount=0.002)
    kill[0] = Entry()
    batch = feed.drain()
    assert [(e["type"], e.get("status")) for e in batch] == [
        ("kill", None),
        ("fill", None),
        ("order", "accepted"),
        ("order", "partially_filled"),
        ("order", "filled"),
        ("order", "rejected"),
        ("position", None),
    ]
    assert batch[5]["code"] == "RISK_MAX_NOTIONAL" and batch[5]["sentence"] == "too big"
    assert batch[4]["order"]["filled"] == 0.002 and batch[4]["order"]["id"] == "1"
    assert feed.drain() == []  # each change is told once
    kill[0] = None
    positions.pop(BTC)
    assert [(e["type"], e.get("state"), e.get("after")) for e in feed.drain()] == [
        ("kill", None, None),
        ("position", None, 0.0),
    ]


class Recorder(Strategy):
    def __init__(self, params: Any) -> None:
        super().__init__(params)
        self.calls: list[str] = []

    def on_tick(self, ctx: Any) -> None:
        self.calls.append("tick")

    def on_fill(self, ctx: Any, fill: Any) -> None:
        self.calls.append(f"fill {fill.amount:g} {fill.raw['trade_id']}")

    def on_order_update(self, ctx: Any, update: Any) -> None:
        self.calls.append(f"order {update.status} {update.order and update.order.filled}")

    def on_position_change(self, ctx: Any, change: Any) -> None:
        self.calls.append(f"position {change.after:g}")

    def on_kill(self, ctx: Any, change: Any) -> None:
        self.calls.append(f"kill {change.standing} {change.level}")
        raise ValueError("boom")  # an error in one callback does not stop the others


class NoPort:
    def call(self, name: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
        raise AssertionError(f"unexpected call {name}")


def test_runtime_delivers_events_then_timers_then_tick_and_tells_errors() -> None:
    strategy = Recorder(None)
    ctx = StrategyContext(NoPort(), symbols=[BTC], params=None, run_id="r")
    runtime = StrategyRuntime(strategy, ctx, Path(__file__))
    ctx.at(time.time() - 1, lambda c: strategy.calls.append("timer"))
    ctx.every(3600, lambda c: strategy.calls.append("hourly"))
    ledger, positions, kill = Ledger(), {}, [None]
    feed = feed_with(ledger, positions, kill)
    ledger.placed(spec("pb-x-0"), {"id": "1", "status": "closed", "filled": 0.002})
    ledger.add_trades(BTC, [{"id": "t1", "order": "1", "side": "buy", "price": 50000.0,
                             "amount": 0.002, "timestamp": 1}])  # fmt: skip
    positions[BTC] = PositionSnapshot(symbol=BTC, amount=0.002)
    outcome = runtime.cycle(feed.drain(), tick=True)
    assert strategy.calls == [
        "fill 0.002 t1", "order accepted 0.0", "order filled 0.002", "position 0.002",
        "timer", "tick",
    ]  # fmt: skip
    assert outcome["errors"] == []
    assert 3590 < outcome["next_timer"] - time.time() <= 3600  # the one-shot is gone

    strategy.calls.clear()
    kill[0] = Entry()
    ctx.at(time.time() - 1, lambda c: strategy.calls.append("timer"))
    outcome = runtime.cycle(feed.drain(), tick=False)
    assert strategy.calls == ["kill True halt"]  # no timer while the switch stands
    (err,) = outcome["errors"]
    assert err["callback"] == "on_kill"
    assert f"{Path(__file__)}:" in err["error"] and "ValueError: boom" in err["error"]
    assert "raise ValueError" in err["traceback"]


def test_an_adopted_order_is_told_in_the_first_cycle() -> None:
    """Orders an earlier run left, adopted at start (before the feed's baseline), are
    ORDER_ADOPTED events; positions standing at start are the baseline, not events."""
    ledger, positions, kill = Ledger(), {BTC: PositionSnapshot(symbol=BTC, amount=0.5)}, [None]
    feed = EventFeed(ledger, lambda: positions, lambda: kill[0])
    ledger.placed(spec("pb-s-r-7"), {"id": "9", "status": "open"}, adopted=True)
    feed.prime()
    (event,) = feed.drain()
    assert (event["status"], event["code"]) == ("accepted", "ORDER_ADOPTED")
    assert "earlier run of this strategy" in event["sentence"]


def test_a_late_open_answer_never_undoes_a_fill() -> None:
    """The user stream may say "closed" before the placement answer says "open": the order
    stays filled, its fill never shrinks, and ORDER_FILLED is told once."""
    ledger = Ledger()
    told: list[dict[str, Any]] = []
    ledger.listeners.append(told.append)
    ledger.placed(spec("pb-x-1"), {"id": "7", "status": "open", "filled": 0.0})
    ledger.update("pb-x-1", {"id": "7", "status": "closed", "filled": 0.002})  # the stream
    ledger.update("pb-x-1", {"id": "7", "status": "open", "filled": 0.0})  # a late answer
    ledger.update("pb-x-1", {"id": "7", "status": "closed", "filled": 0.002})  # REST
    assert ledger.orders["pb-x-1"].status == "closed"
    assert ledger.orders["pb-x-1"].filled == 0.002
    assert [e["code"] for e in told if e["type"] == "order"] == ["ORDER_ACCEPTED", "ORDER_FILLED"]
