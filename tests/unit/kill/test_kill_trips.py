"""Automatic trips fed by bus events and runner state, each with its reason sentence."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from perpbot.config import StrategyFile
from perpbot.engine.state import RunState
from perpbot.events import Decision, EventBus, ExchangeCall
from perpbot.kill.sentinel import SentinelWatcher, read_sentinel
from perpbot.kill.trips import Trips


class Warnings:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def warn(self, text: str) -> None:
        self.lines.append(text)


def _trips(**kill: Any) -> tuple[Trips, list[Decision]]:
    cfg = StrategyFile.model_validate(
        {
            "strategy": {"name": "grid", "file": "grid.py", "symbols": ["BTC/USDT:USDT"]},
            "exchange": {"id": "sim", "profile": "main"},
            "kill": kill,
        }
    )
    runner = SimpleNamespace(
        bus=EventBus(),
        config=cfg,
        run_id="r1",
        output=Warnings(),
        state=RunState(run_id="r1", strategy="grid", symbols=["BTC/USDT:USDT"]),
        after_tick=[],
        background=[],
    )
    trips = Trips(runner, cfg.kill, SentinelWatcher())  # type: ignore[arg-type]
    trips.attach()
    seen: list[Decision] = []
    runner.bus.subscribe(lambda e: seen.append(e) if getattr(e, "action", "") == "trip" else None)
    return trips, seen


def _call(ok: bool) -> ExchangeCall:
    return ExchangeCall(
        request_id=1, method="fetch_ticker", http_method="GET", path="/fapi/v1/ticker/24hr",
        params={}, status=200 if ok else 503, ok=ok, symbol="BTC/USDT:USDT",
        error_class=None if ok else "ExchangeNotAvailable",
    )  # fmt: skip


def test_a_418_ban_trips_with_the_limiters_sentence(state_home: Path) -> None:
    trips, seen = _trips()
    trips.runner.bus.publish(
        Decision("ratelimit", "ban", "RATE_BANNED", "banned until 12:00:00 (418)", {})
    )
    (trip,) = seen
    assert trip.code == "KILL_BAN" and trip.layer == "kill"
    assert "the exchange banned us (HTTP 418): banned until 12:00:00" in trip.sentence
    sentinel = read_sentinel()
    assert sentinel is not None
    entry = sentinel.primary
    assert (entry.code, entry.level, entry.scope, entry.source) == (
        "KILL_BAN", "cancel", "run:grid", "trip"
    )  # fmt: skip
    assert entry.reason.startswith("automatic trip KILL_BAN in run r1:")


def test_on_ban_false_does_not_trip(state_home: Path) -> None:
    trips, seen = _trips(on_ban=False)
    trips.runner.bus.publish(Decision("ratelimit", "ban", "RATE_BANNED", "banned", {}))
    assert seen == [] and read_sentinel() is None


def test_consecutive_failures_reset_on_success(state_home: Path) -> None:
    trips, seen = _trips(max_consecutive_failures=3)
    bus = trips.runner.bus
    for ok in (False, False, True, False, False):
        bus.publish(_call(ok))
    assert seen == []
    bus.publish(_call(False))
    (trip,) = seen
    assert trip.code == "KILL_FAILURES"
    assert "3 exchange requests failed in a row" in trip.sentence
    assert "last: fetch_ticker BTC/USDT:USDT (ExchangeNotAvailable)" in trip.sentence


def test_maintenance_answers_are_neither_counted_nor_a_reset(state_home: Path) -> None:
    trips, seen = _trips(max_consecutive_failures=3)
    bus = trips.runner.bus
    on_maintenance = replace(_call(False), error_class="OnMaintenance")
    bus.publish(_call(False))
    for _ in range(50):  # a maintenance window: every request refused, none counted
        bus.publish(on_maintenance)
    bus.publish(_call(False))
    assert seen == [] and trips.failures == 2  # the failures around it still add up
    bus.publish(_call(False))
    (trip,) = seen
    assert trip.code == "KILL_FAILURES"


def test_drawdown_counts_from_the_peak_not_the_start(state_home: Path) -> None:
    trips, seen = _trips(max_drawdown_pct=10)
    r = trips.runner
    check = r.after_tick[0]
    # up 5 % on the start, 12.5 % off the peak
    r.state.equity, r.state.peak_equity = 10_500.0, 12_000.0
    check(r, {})
    (trip,) = seen
    assert trip.code == "KILL_DRAWDOWN"
    assert "equity 10,500.00 is 12.50% below its peak 12,000.00" in trip.sentence
    assert "max_drawdown_pct = 10" in trip.sentence


def test_drawdown_within_the_limit_does_not_trip(state_home: Path) -> None:
    trips, seen = _trips(max_drawdown_pct=10)
    r = trips.runner
    r.state.equity, r.state.peak_equity = 10_900.0, 12_000.0
    r.after_tick[0](r, {})
    assert seen == []


@pytest.mark.parametrize(("new", "tripped"), [(600, True), (1500, False)])
def test_a_rate_budget_cut_below_the_fraction_trips(
    state_home: Path, new: int, tripped: bool
) -> None:
    trips, seen = _trips(min_rate_budget_fraction=0.5)
    trips.runner.bus.publish(
        Decision("ratelimit", "tighten", "RATE_TIGHTEN", "429 seen", {"new": new, "nominal": 2400})
    )
    assert bool(seen) is tripped
    if tripped:
        assert "the rate budget was cut to 25% of nominal (600 of 2400" in seen[0].sentence


def test_anomaly_alerts_trip_only_when_marked(state_home: Path) -> None:
    trips, seen = _trips()
    bus = trips.runner.bus
    bus.publish(Decision("monitor", "alert", "MONITOR_FILLS", "odd fills", {}))
    assert seen == []
    bus.publish(Decision("monitor", "alert", "MONITOR_LOSS", "loss burst", {"trip": True}))
    (trip,) = seen
    assert trip.code == "KILL_ANOMALY" and "MONITOR_LOSS: loss burst" in trip.sentence


def test_stale_prices_and_only_the_first_trip_counts(state_home: Path) -> None:
    trips, seen = _trips(max_price_age_s=5, on_ban=True)
    trips.runner.state.mark_times["BTC/USDT:USDT"] = time.time() - 2
    assert trips.price_age("BTC/USDT:USDT") == pytest.approx(2, abs=0.5)
    # one stale source of a basket that is still healthy is not a stale feed
    trips.runner.bus.publish(
        Decision("index", "alert", "INDEX_SOURCE_STALE", "venue b: no price for 12 s", {})
    )
    assert seen == []
    trips.runner.bus.publish(
        Decision("index", "alert", "INDEX_UNHEALTHY", "1 of 3 sources fresh for 12 s", {})
    )
    trips.runner.bus.publish(Decision("ratelimit", "ban", "RATE_BANNED", "banned", {}))
    assert [t.code for t in seen] == ["KILL_STALE_PRICE"]
    assert len(read_sentinel().entries) == 1  # type: ignore[union-attr]


def test_a_trip_holds_in_process_when_the_file_cannot_be_written(
    state_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips, seen = _trips(trip_scope="profile")

    def refuse(entry: Any) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("perpbot.kill.trips.write_sentinel", refuse)
    trips.runner.bus.publish(Decision("ratelimit", "ban", "RATE_BANNED", "banned", {}))
    assert [t.code for t in seen] == ["KILL_BAN"]
    assert read_sentinel() is None
    entry = trips.watcher.match(profile="main", run_id="r1", strategy="grid")
    assert entry is not None and entry.scope == "profile:main"
    assert "No space left on device" in trips.runner.output.lines[0]
