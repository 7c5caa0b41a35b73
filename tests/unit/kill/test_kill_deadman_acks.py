"""The dead-man switch's decisions, the acknowledgement contract and the [kill] table."""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ccxt
import pytest
from pydantic import ValidationError

from perpbot.config import KillSection, StrategyFile, format_validation_error
from perpbot.events import EventBus
from perpbot.kill.acks import acknowledged, describe_ack
from perpbot.kill.deadman import Deadman
from perpbot.kill.sentinel import new_entry, write_sentinel


def _runner(exchange: Any, tick: float = 1.0) -> Any:
    cfg = StrategyFile.model_validate(
        {
            "strategy": {
                "name": "grid", "file": "grid.py", "symbols": ["BTC/USDT:USDT"],
                "tick_interval": tick,
            },
            "exchange": {"id": "bybit", "profile": "main"},
        }
    )  # fmt: skip
    events: list[Any] = []
    bus = EventBus()
    bus.subscribe(events.append)
    runner = SimpleNamespace(
        config=cfg, bus=bus, client=SimpleNamespace(exchange=exchange), events=events,
        on_connected=[], after_tick=[], before_trade=[], background=[], before_stop=[],
        summary_extras={}, release=[], left_armed=[],
    )  # fmt: skip
    return runner


async def test_an_exchange_without_a_countdown_is_reported_at_start() -> None:
    runner = _runner(exchange=object())
    deadman = Deadman(runner, KillSection(), SimpleNamespace(stopping=False))  # type: ignore[arg-type]
    deadman.attach()
    await runner.on_connected[0](runner)
    (alert,) = runner.events
    assert alert.code == "KILL_DEADMAN_UNAVAILABLE" and alert.action == "alert"
    assert "exchange 'bybit' has no cancel-all-after timer" in alert.sentence
    assert runner.summary_extras["deadman"]["unavailable"]
    assert deadman.armed == []
    await runner.before_stop[0](runner)  # nothing armed, nothing to disarm


def test_refreshing_stops_on_a_trip_or_a_stale_heartbeat() -> None:
    watchdog = SimpleNamespace(stopping=False)
    runner = _runner(exchange=object(), tick=0.5)
    deadman = Deadman(runner, KillSection(deadman_countdown_s=2.0), watchdog)  # type: ignore[arg-type]
    assert deadman.should_refresh() is None
    deadman.heartbeat = time.monotonic() - 3.0  # older than tick (0.5) + countdown (2)
    assert deadman.should_refresh() == "the engine's last tick was 3 s ago (limit 2.5 s)"
    deadman.beat(runner, {})
    assert deadman.should_refresh() is None
    watchdog.stopping = True
    assert deadman.should_refresh() == "the kill switch tripped"


def test_an_ack_counts_for_standing_entries_at_least_as_strong(state_home: Path) -> None:
    halt = new_entry("halt", "pause")
    sentinel = write_sentinel(halt)
    ack = {"entry_id": halt.id, "level": "halt", "state": "halted"}
    assert acknowledged(ack, sentinel, halt)
    flatten = new_entry("flatten", "now flatten")
    sentinel = write_sentinel(flatten)
    assert not acknowledged(ack, sentinel, flatten)  # a halt does not answer a flatten
    assert not acknowledged({**ack, "state": "acting"}, sentinel, halt)
    assert not acknowledged({**ack, "entry_id": "gone"}, sentinel, halt)


def test_describe_ack_says_what_was_done() -> None:
    line = describe_ack(
        {
            "run_id": "r1", "strategy": "grid", "pid": 7, "level": "flatten", "state": "done",
            "acted_ms": 84.4, "cancelled": [{"symbol": "BTC/USDT:USDT"}] * 2,
            "closed": [{"symbol": "BTC/USDT:USDT", "from": 0.01, "to": 0.0}],
            "errors": ["ETH/USDT:USDT: position still -0.1"],
        }
    )  # fmt: skip
    assert line == (
        "bot r1 (grid, pid 7) acknowledged level flatten in 84 ms; cancelled 2 order(s) on "
        "BTC/USDT:USDT; closed BTC/USDT:USDT +0.01 -> +0; problem: ETH/USDT:USDT: position "
        "still -0.1"
    )


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"trip_level": "nuke"}, "[kill] trip_level: got 'nuke'"),
        ({"max_drawdown_pct": 0}, "[kill] max_drawdown_pct: got 0"),
        ({"poll_ms": 500}, "[kill] poll_ms: got 500"),
        ({"deadman_countdown_s": 5, "deadman_refresh_s": 5}, "below deadman_countdown_s (5)"),
        ({"on_bann": True}, "[kill] on_bann: unknown key"),
    ],
)
def test_kill_table_errors_are_one_line(table: dict[str, Any], expected: str) -> None:
    doc = {"strategy": {"name": "g", "file": "g.py", "symbols": ["X"]}, "kill": table}
    with pytest.raises(ValidationError) as info:
        StrategyFile.model_validate(doc)
    line = format_validation_error("s.toml", info.value)
    assert expected in line and "\n" not in line


class _Countdowns:
    """The client's countdown call: records what was sent, or fails while ``refuse`` is set."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, int]] = []
        self.refuse: Exception | None = None

    async def countdown_cancel_all(self, symbol: str, countdown_ms: int) -> dict[str, Any]:
        if self.refuse is not None:
            raise self.refuse
        self.sent.append((symbol, countdown_ms))
        return {}


async def test_a_lapsed_countdown_is_armed_again_before_the_strategy_trades() -> None:
    runner = _runner(exchange=object())
    countdowns = _Countdowns()
    runner.client = countdowns
    watchdog: Any = SimpleNamespace(stopping=False)
    deadman = Deadman(runner, KillSection(deadman_countdown_s=10), watchdog)
    deadman.attach()
    (check,) = runner.before_trade
    deadman.armed = ["BTC/USDT:USDT"]
    deadman.last_set["BTC/USDT:USDT"] = time.time() - 2  # refreshed lately: nothing to do
    assert await check(runner) is None and countdowns.sent == []

    deadman.last_set["BTC/USDT:USDT"] = time.time() - 30  # lapsed (a maintenance window)
    countdowns.refuse = ccxt.ExchangeNotAvailable("503")
    why = await check(runner)
    assert why is not None and "could not be armed again" in why and "BTC/USDT:USDT" in why
    assert countdowns.sent == [] and not any(
        e.code == "KILL_DEADMAN_REARMED" for e in runner.events
    )  # fmt: skip

    countdowns.refuse = None
    assert await check(runner) is None
    assert countdowns.sent == [("BTC/USDT:USDT", 10_000)]
    (rearmed,) = [e for e in runner.events if e.code == "KILL_DEADMAN_REARMED"]
    assert "had lapsed" in rearmed.sentence and "before the strategy trades" in rearmed.sentence
    assert deadman.lapsed() == []
