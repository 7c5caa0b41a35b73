"""Each post-trade detector with a table of observations, and the hub that publishes them."""

from __future__ import annotations

import math
from typing import Any

import pytest

from perpbot.client.account import OpenOrder
from perpbot.config import (
    CancelBurstConfig,
    FundingVolConfig,
    LeverageChangeConfig,
    MarkIndexConfig,
    MonitorSection,
    SlippageConfig,
    StrategyFile,
    ThinBookConfig,
)
from perpbot.events import Decision, EventBus, ExchangeCall
from perpbot.risk.monitor import (
    CancelBurst,
    FundingVol,
    LeverageChange,
    MarkIndex,
    SlippageDrift,
    ThinBook,
    realised_vol,
)
from perpbot.risk.state import RiskState
from perpbot.risk.watch import MonitorHub

SYM = "BTC/USDT:USDT"


# -- cancel bursts ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "history", "burst", "alert", "words"),
    [
        ("quiet bot, burst above min_cancels", [0] * 5, 25, True, ["25 cancels", "far above"]),
        ("quiet bot, burst below min_cancels", [0] * 5, 10, False, []),
        ("busy bot, usual rate", [20] * 5, 25, False, []),
        ("busy bot, 6x its baseline", [5] * 5, 30, True, ["6.0x the bot's own baseline of 5.0"]),
    ],
)
def test_cancel_burst(
    name: str, history: list[int], burst: int, alert: bool, words: list[str]
) -> None:
    cfg = CancelBurstConfig(window_s=10, factor=5, min_cancels=20)
    d = CancelBurst(cfg)
    t = 0.0
    d.observe(t)  # opens the first window
    d.current = 0
    d.recent.clear()
    for count in history:  # whole past windows at the bot's usual rate
        for k in range(count):
            d.observe(t + k * 0.1)
        t += 10.0
        d.check(t)
    for k in range(burst):
        d.observe(t + k * 0.1)
    got = d.check(t + burst * 0.1)
    assert (got is not None) is alert, got
    for w in words:
        assert got is not None and w in got.sentence


# -- leverage / margin mode -------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "before", "after", "own", "alert", "words"),
    [
        ("unchanged", (20.0, "cross"), (20.0, "cross"), None, False, []),
        ("changed from outside", (20.0, "cross"), (50.0, "cross"), None, True, ["from 20x to 50x"]),
        ("the bot asked for it", (20.0, "cross"), (5.0, "cross"), (2.0, 5.0, None), False, []),
        (
            "just after the bot's own change, but to another value",
            (20.0, "cross"),
            (50.0, "cross"),
            (2.0, 5.0, None),
            True,
            ["from 20x to 50x", "not by this bot"],
        ),
        (
            "the bot asked long ago",
            (20.0, "cross"),
            (5.0, "cross"),
            (600.0, 5.0, None),
            True,
            ["not by this bot"],
        ),
        ("margin mode", (20.0, "cross"), (20.0, "isolated"), None, True, ["cross to isolated"]),
        (
            "own margin mode",
            (20.0, "cross"),
            (20.0, "isolated"),
            (1.0, None, "isolated"),
            False,
            [],
        ),
    ],
)
def test_leverage_change(
    name: str,
    before: tuple[float, str],
    after: tuple[float, str],
    own: tuple[float, float | None, str | None] | None,
    alert: bool,
    words: list[str],
) -> None:
    d = LeverageChange(LeverageChangeConfig(grace_s=10))
    assert d.observe(SYM, *before, 1000.0, None) is None  # the first reading is the baseline
    asked = None
    if own is not None:
        asked = {"at": 1000.0 - own[0], "leverage": own[1], "margin_mode": own[2]}
    got = d.observe(SYM, *after, 1000.0, asked)
    assert (got is not None) is alert
    for w in words:
        assert got is not None and w in got.sentence


# -- thin book --------------------------------------------------------------------------------
def book(size: float, levels: int = 10) -> tuple[list[list[float]], list[list[float]]]:
    bids = [[100.0 - 0.1 * i, size] for i in range(levels)]
    asks = [[100.1 + 0.1 * i, size] for i in range(levels)]
    return bids, asks


def resting(price: float, side: str = "buy", qty: float = 0.1) -> OpenOrder:
    return OpenOrder("c", "1", SYM, side, "limit", qty, qty, price, False)


@pytest.mark.parametrize(
    ("name", "now_book", "orders", "alert"),
    [
        ("normal book", book(1.0), [resting(99.8), resting(99.7)], False),
        ("book thinned under the orders", book(0.05), [resting(99.8), resting(99.7)], True),
        ("only one order at a thin level", book(0.05), [resting(99.8)], False),
        ("orders beyond the book's usual reach", book(0.05), [resting(90.0), resting(89.0)], False),
        (
            "levels vanished where the orders rest",
            book(1.0, levels=2),
            [resting(99.6), resting(99.5)],
            True,
        ),
    ],
)
def test_thin_book(
    name: str,
    now_book: tuple[list[list[float]], list[list[float]]],
    orders: list[OpenOrder],
    alert: bool,
) -> None:
    d = ThinBook(ThinBookConfig(thin_fraction=0.25, min_orders=2))
    for _ in range(5):
        assert d.observe(SYM, *book(1.0), []) is None  # the book's norm
    got = d.observe(SYM, *now_book, orders)
    assert (got is not None) is alert, got
    if got is not None:
        assert "resting orders on BTC/USDT:USDT sit at thin book levels" in got.sentence


def test_thin_book_absolute_floor_without_history() -> None:
    d = ThinBook(ThinBookConfig(min_level_notional=50.0, min_orders=1))
    got = d.observe(SYM, *book(0.2), [resting(99.8)])
    assert got is not None  # 0.2 x 99.8 < 50 USDT


# -- mark vs index ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "mark", "index", "sustain", "alert"),
    [
        ("close", 60003.0, 60000.0, 0.0, False),
        ("diverged", 60400.0, 60000.0, 0.0, True),
        ("diverged below", 59600.0, 60000.0, 0.0, True),
        ("diverged but not for long enough", 60400.0, 60000.0, 30.0, False),
    ],
)
def test_mark_index(name: str, mark: float, index: float, sustain: float, alert: bool) -> None:
    d = MarkIndex(MarkIndexConfig(max_bps=50, sustain_s=sustain))
    got = d.observe(SYM, mark, index, 100.0)
    assert (got is not None) is alert
    if got is not None:
        assert "66.7 bps" in got.sentence and "max_bps 50" in got.sentence


def test_mark_index_sustained() -> None:
    d = MarkIndex(MarkIndexConfig(max_bps=50, sustain_s=30))
    assert d.observe(SYM, 60400.0, 60000.0, 100.0) is None
    assert d.observe(SYM, 60400.0, 60000.0, 131.0) is not None
    assert d.observe(SYM, 60000.0, 60000.0, 132.0) is None  # back inside resets the clock
    assert d.observe(SYM, 60400.0, 60000.0, 140.0) is None


# -- funding vs realised volatility -------------------------------------------------------------
def test_realised_vol_annualises() -> None:
    closes = [100.0 * math.exp(0.001 * (1 if i % 2 else -1)) for i in range(61)]
    vol = realised_vol(closes, 60.0)
    assert vol is not None
    assert vol == pytest.approx(0.002 * math.sqrt(525_600), rel=0.05)
    assert realised_vol([1.0, 2.0], 60.0) is None


@pytest.mark.parametrize(
    ("name", "rate", "next_ts", "vol", "alert", "words"),
    [
        ("ordinary funding", 0.0001, [0.0, 28800.0], 0.6, False, []),
        ("sim-fast funding", 0.0001, [0.0, 30.0], 0.84, True, ["every 30 s", "125.1x", "84.0 %"]),
        ("heavy funding vs calm market", 0.003, [0.0, 28800.0], 0.5, True, ["328.5 % a year"]),
        ("heavy, but below the floor", 0.00005, [0.0, 28800.0], 0.01, False, []),
    ],
)
def test_funding_vol(
    name: str, rate: float, next_ts: list[float], vol: float, alert: bool, words: list[str]
) -> None:
    d = FundingVol(FundingVolConfig(max_ratio=1.0, min_funding_pct=10.0))
    for ts in next_ts:
        d.observe_funding(SYM, rate, ts)
    d.vol[SYM] = vol
    got = d.check(SYM)
    assert (got is not None) is alert, d.figures(SYM)
    for w in words:
        assert got is not None and w in got.sentence, got.sentence if got else None


# -- slippage ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "series", "alert", "words"),
    [
        ("steady small slippage", [1.0] * 40, False, []),
        ("mean above the ceiling", [30.0] * 5, True, ["averaged 30.0 bps", "max_mean_bps 25"]),
        ("drift over the baseline", [1.0] * 10 + [14.0] * 5, True, ["13.0 bps worse than the 10"]),
        ("too few fills", [40.0] * 4, False, []),
    ],
)
def test_slippage(name: str, series: list[float], alert: bool, words: list[str]) -> None:
    d = SlippageDrift(SlippageConfig(window=5, max_mean_bps=25, drift_bps=10, baseline_fills=50))
    got = None
    for x in series:
        got = d.observe(SYM, x)
    assert (got is not None) is alert
    for w in words:
        assert got is not None and w in got.sentence


# -- the hub ----------------------------------------------------------------------------------
def hub_with(monitor: dict[str, Any]) -> tuple[MonitorHub, list[Decision], RiskState]:
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    cfg = StrategyFile.model_validate(
        {"strategy": {"name": "t", "file": "t.py", "symbols": [SYM]}, "monitor": monitor}
    )
    state = RiskState(cfg)
    return MonitorHub(MonitorSection(**monitor), state, bus, [SYM]), seen, state


def cancel_call() -> ExchangeCall:
    return ExchangeCall(1, "cancel_order", "DELETE", "/fapi/v1/order", {}, 200, True, symbol=SYM)


@pytest.mark.parametrize("trip", [False, True])
def test_hub_publishes_once_with_the_trip_flag(trip: bool) -> None:
    hub, seen, state = hub_with({"cancel_burst": {"min_cancels": 3, "trip": trip}})
    for _ in range(6):
        hub.on_event(cancel_call())
    alerts = [d for d in seen if d.layer == "monitor"]
    assert len(alerts) == 1, "an active alert is not repeated"
    a = alerts[0]
    assert (a.action, a.code, a.data["trip"]) == ("alert", "MONITOR_CANCEL_BURST", trip)
    assert state.alerts["monitor:cancel_burst"].trip is trip


def test_hub_disabled_detector_says_nothing() -> None:
    hub, seen, _ = hub_with({"cancel_burst": {"min_cancels": 3, "enabled": False}})
    for _ in range(6):
        hub.on_event(cancel_call())
    assert not seen
    hub, seen, _ = hub_with({"enabled": False, "cancel_burst": {"min_cancels": 3}})
    for _ in range(6):
        hub.on_event(cancel_call())
    assert not seen


def test_hub_keeps_the_last_limit_change() -> None:
    hub, _, _ = hub_with({})
    hub.on_event(Decision("ratelimit", "tighten", "RATE_TIGHTEN", "cut to 50 % after a 429"))
    hub.on_event(Decision("risk", "reject", "RISK_X", "not a limit change"))
    assert hub.last_limit_change is not None
    assert hub.last_limit_change["code"] == "RATE_TIGHTEN"
    assert "after a 429" in hub.last_limit_change["sentence"]


def test_alerts_expire_after_their_cooldown() -> None:
    hub, _, state = hub_with({"cancel_burst": {"min_cancels": 3, "cooldown_s": 5}})
    for _ in range(4):
        hub.on_event(cancel_call())
    alert = state.alerts["monitor:cancel_burst"]
    state.expire_alerts(now=alert.last + 4)
    assert state.alerts
    state.expire_alerts(now=alert.last + 6)
    assert not state.alerts
