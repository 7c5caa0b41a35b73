"""The index basket: aggregation table (stale, outlier, error, dispersion, health) and the
decisions the basket publishes when a source or the basket changes state."""

from __future__ import annotations

from typing import Any

import pytest

from perpbot.config import IndexSection, StrategyFile
from perpbot.events import Decision, EventBus
from perpbot.risk.index import IndexBasket, IndexSource, Quote, aggregate, median
from perpbot.risk.state import RiskState

NOW = 1_800_000_000.0
SYM = "BTC/USDT:USDT"


def q(name: str, price: float | None, age: float = 0.5, **kw: Any) -> Quote:
    return Quote(name, price, NOW - age, NOW - 0.1, kw.get("error"), kw.get("error_since"))


BASE = [q("a", 60000.0), q("b", 60003.0), q("c", 59998.0)]


@pytest.mark.parametrize(
    ("name", "quotes", "cfg", "healthy", "statuses", "words"),
    [
        ("all good", BASE, {}, True, "good good good", ["3 of 3 sources good"]),
        (
            "one frozen",
            [q("a", 60000.0), q("b", 60003.0), q("c", 59998.0, age=30)],
            {},
            True,
            "good good stale",
            ["c: stale, data 30.0 s old > max_age_s 10"],
        ),
        (
            "one 10 % off",
            [q("a", 60000.0), q("b", 66003.0), q("c", 59998.0)],
            {},
            True,
            "good outlier good",
            ["b: outlier, +10.01 % from the median 60000"],
        ),
        (
            "two of three stale",
            [q("a", 60000.0, age=20), q("b", 60003.0, age=25), q("c", 59998.0)],
            {"min_sources": 2},
            False,
            "stale stale good",
            ["1 good source of 3, fewer than [index] min_sources 2", "a: stale"],
        ),
        (
            "errors for longer than max_age",
            [q("a", 60000.0, error="NetworkError", error_since=NOW - 12), *BASE[1:]],
            {"min_sources": 3},
            False,
            "error good good",
            ["a: error, failing for 12.0 s (NetworkError)"],
        ),
        (
            "a brief error is tolerated",
            [q("a", 60000.0, error="NetworkError", error_since=NOW - 2), *BASE[1:]],
            {"min_sources": 3},
            True,
            "good good good",
            [],
        ),
        (
            "two sources that disagree: no majority",
            [q("a", 60000.0), q("b", 61800.0)],
            {"max_dispersion_pct": 1.0},
            False,
            "disputed disputed",
            ["0 good sources of 2", "a, b: the fresh sources disagree by 2.96 %"],
        ),
        (
            "three evenly spread sources are disputed too",
            [q("a", 60000.0), q("b", 60500.0), q("c", 61000.0)],
            {"max_dispersion_pct": 1.0},
            False,
            "disputed disputed disputed",
            ["max_dispersion_pct 1 %"],
        ),
        ("no quote yet", [Quote("a", None, None, 0.0)], {}, False, "missing", ["0 good sources"]),
    ],
)
def test_aggregate(
    name: str,
    quotes: list[Quote],
    cfg: dict[str, Any],
    healthy: bool,
    statuses: str,
    words: list[str],
) -> None:
    r = aggregate(SYM, quotes, NOW, IndexSection(**cfg))
    assert r.healthy is healthy
    assert " ".join(s.status for s in r.sources) == statuses
    for w in words:
        assert w in r.reason, f"{w!r} not in {r.reason!r}"


@pytest.mark.parametrize(
    "broken",
    [q("b", 60003.0, age=60), q("b", 66003.3), q("b", 54002.7)],
    ids=["frozen", "10% above", "10% below"],
)
def test_one_broken_source_moves_the_reference_less_than_0_1_pct(broken: Quote) -> None:
    cfg = IndexSection(min_sources=2)
    before = aggregate(SYM, BASE, NOW, cfg).price
    after = aggregate(SYM, [BASE[0], broken, BASE[2]], NOW, cfg)
    assert before is not None and after.price is not None and after.healthy
    assert abs(after.price - before) / before < 0.001


def test_median() -> None:
    assert median([3.0, 1.0, 2.0]) == 2.0
    assert median([4.0, 1.0, 2.0, 3.0]) == 2.5


class Feed:
    """A source whose next answers a test scripts."""

    def __init__(self, price: float) -> None:
        self.price: float | None = price
        self.ts_offset = 0.0
        self.fail = False

    async def __call__(self) -> tuple[float | None, float | None]:
        import time

        if self.fail:
            raise ConnectionError("down")
        return self.price, time.time() - self.ts_offset


async def test_basket_explains_each_change_and_holds_reduce_only() -> None:
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    cfg = StrategyFile.model_validate({"strategy": {"name": "t", "file": "t.py", "symbols": [SYM]}})
    state = RiskState(cfg)
    feeds = {n: Feed(p) for n, p in (("a", 60000.0), ("b", 60003.0), ("c", 59998.0))}
    sources = [IndexSource(n, SYM, f, 1.0) for n, f in feeds.items()]
    basket = IndexBasket(IndexSection(min_sources=2, max_age_s=5), sources, state, bus)

    await basket.poll_once()
    assert state.index[SYM].healthy and not seen  # a healthy start is not news
    feeds["c"].price = 66000.0
    await basket.poll_once()
    assert [d.code for d in seen] == ["INDEX_SOURCE_OUTLIER"]
    assert "index source c" in seen[-1].sentence and seen[-1].data["trip"] is False
    assert "index:BTC/USDT:USDT:c" in state.alerts
    feeds["b"].ts_offset = 60.0  # b freezes: a and c are left, and they disagree
    await basket.poll_once()
    codes = [d.code for d in seen]
    assert codes[-4:] == [
        "INDEX_SOURCE_DISPUTED",
        "INDEX_SOURCE_STALE",
        "INDEX_SOURCE_DISPUTED",
        "INDEX_UNHEALTHY",
    ]
    unhealthy = seen[-1]
    assert unhealthy.action == "alert" and unhealthy.data["trip"] is False
    assert "the bot is reduce-only on BTC/USDT:USDT until it recovers" in unhealthy.sentence
    assert state.reduce_only_reason(SYM) is not None
    assert state.index_price(SYM)[0] is None
    feeds["b"].ts_offset = 0.0
    feeds["c"].price = 60001.0
    await basket.poll_once()
    assert {"INDEX_SOURCE_RECOVERED", "INDEX_RECOVERED"} <= {d.code for d in seen[-3:]}
    assert state.reduce_only_reason(SYM) is None and not state.alerts
    assert state.index_price(SYM)[0] == pytest.approx(60001.0)


async def test_basket_set_to_kill_marks_the_alert_trip() -> None:
    bus = EventBus()
    seen: list[Decision] = []
    bus.subscribe(lambda e: seen.append(e) if isinstance(e, Decision) else None)
    cfg = StrategyFile.model_validate({"strategy": {"name": "t", "file": "t.py", "symbols": [SYM]}})
    feed = Feed(60000.0)
    feed.fail = True
    basket = IndexBasket(
        IndexSection(on_unhealthy="kill"), [IndexSource("a", SYM, feed, 1.0)], RiskState(cfg), bus
    )
    await basket.poll_once()
    assert seen[-1].code == "INDEX_UNHEALTHY" and seen[-1].data["trip"] is True
    assert "tripping the kill switch" in seen[-1].sentence
