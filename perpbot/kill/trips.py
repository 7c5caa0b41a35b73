"""Automatic trips: conditions under which a run pulls its own kill switch.

Configured in ``[kill]`` of strategy.toml. Each trip writes the sentinel (so it holds across
a restart until a human clears it) at ``trip_level`` for ``trip_scope``, with a sentence that
names the limit and the value that crossed it, and publishes
``Decision(layer="kill", action="trip", code="KILL_...")``. The run's watchdog then acts on
the sentinel like on any other. If the sentinel cannot be written (a read-only or full
disk), the trip still holds inside this process.

    KILL_BAN          the rate limiter reports a 418 ban            (on_ban)
    KILL_FAILURES     N exchange requests failed in a row           (max_consecutive_failures;
                      "under maintenance" answers are not counted)
    KILL_DRAWDOWN     equity fell from its PEAK by more than a limit (max_drawdown_pct)
    KILL_RATE_BUDGET  the rate budget was cut below a fraction      (min_rate_budget_fraction)
    KILL_STALE_PRICE  no fresh mark price for longer than a limit   (max_price_age_s)
    KILL_ANOMALY      a monitor alert marked ``trip``               (on_anomaly)
    KILL_UNPROTECTED  a position could not get its exchange-side stop ([protect] on_failure)
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from perpbot.client.maintenance import ERROR_CLASS as MAINTENANCE
from perpbot.events import Decision, Event, ExchangeCall
from perpbot.kill.sentinel import KillEntry, SentinelWatcher, new_entry, write_sentinel

if TYPE_CHECKING:
    from perpbot.config import KillSection, StrategyFile
    from perpbot.engine.hooks import AfterTick, Background
    from perpbot.engine.output import RunOutput
    from perpbot.engine.state import RunState
    from perpbot.events import EventBus


class TripsRun(Protocol):
    """What the automatic trips use of a run: its events, and its state's equity, peak
    equity and mark price times."""

    run_id: str
    config: StrategyFile
    bus: EventBus
    output: RunOutput
    state: RunState
    after_tick: AfterTick
    background: Background


def trip_scope(cfg: KillSection, *, strategy: str, profile: str | None) -> str:
    if cfg.trip_scope == "all":
        return "all"
    if cfg.trip_scope == "profile" and profile:
        return f"profile:{profile}"
    return f"run:{strategy}"


class Trips:
    def __init__(self, runner: TripsRun, cfg: KillSection, watcher: SentinelWatcher) -> None:
        self.runner = runner
        self.cfg = cfg
        self.watcher = watcher
        self.tripped: KillEntry | None = None
        self.failures = 0
        self.last_failure = ""
        self.started = time.time()

    def attach(self) -> None:
        r = self.runner
        r.bus.subscribe(self.on_event)
        if self.cfg.max_drawdown_pct is not None:
            r.after_tick.append(self.check_drawdown)
        if self.cfg.max_price_age_s is not None:
            r.background.append(self.watch_prices)

    # -- the trip ---------------------------------------------------------------------------
    def trip(self, code: str, sentence: str, **data: Any) -> KillEntry | None:
        """Pull the switch once (later conditions are recorded by the first trip's stop)."""
        if self.tripped is not None:
            return None
        r = self.runner
        cfg = self.cfg
        scope = trip_scope(cfg, strategy=r.config.strategy.name, profile=r.config.exchange.profile)
        reason = f"automatic trip {code} in run {r.run_id}: {sentence}"
        entry = new_entry(cfg.trip_level, reason, scope=scope, code=code, source="trip")
        self.tripped = entry
        try:
            write_sentinel(entry)
        except OSError as exc:
            self.watcher.force(entry)
            r.output.warn(f"could not write the kill sentinel ({exc.strerror}); tripped in-process")
        r.bus.publish(
            Decision(
                "kill",
                "trip",
                code,
                f"{sentence}; kill switch set to {cfg.trip_level} for {scope}",
                {"level": cfg.trip_level, "scope": scope, "entry_id": entry.id, **data},
            )
        )
        return entry

    # -- event-driven trips -----------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if isinstance(event, ExchangeCall):
            self._count(event)
        elif isinstance(event, Decision) and event.layer != "kill":
            self._decision(event)

    def _count(self, call: ExchangeCall) -> None:
        limit = self.cfg.max_consecutive_failures
        if call.ok:
            self.failures = 0
            return
        if call.error_class == MAINTENANCE:
            return  # a maintenance window: neither counted nor a reset (docs/kill.md)
        self.failures += 1
        self.last_failure = f"{call.method} {call.symbol or ''}".strip() + (
            f" ({call.error_class}{f' {call.error_code}' if call.error_code else ''})"
        )
        if limit is not None and self.failures >= limit:
            self.trip(
                "KILL_FAILURES",
                f"{self.failures} exchange requests failed in a row (limit [kill] "
                f"max_consecutive_failures = {limit}; last: {self.last_failure})",
                failures=self.failures,
            )

    def _decision(self, d: Decision) -> None:
        cfg = self.cfg
        if d.action == "ban" and cfg.on_ban:
            self.trip("KILL_BAN", f"the exchange banned us (HTTP 418): {d.sentence}", source=d.code)
        elif d.action == "tighten" and cfg.min_rate_budget_fraction is not None:
            new, nominal = d.data.get("new"), d.data.get("nominal")
            if isinstance(new, int | float) and isinstance(nominal, int | float) and nominal > 0:
                frac = new / nominal
                if frac < cfg.min_rate_budget_fraction:
                    self.trip(
                        "KILL_RATE_BUDGET",
                        f"the rate budget was cut to {frac:.0%} of nominal ({new:g} of "
                        f"{nominal:g}; limit [kill] min_rate_budget_fraction = "
                        f"{cfg.min_rate_budget_fraction:g}): {d.sentence}",
                        fraction=frac,
                    )
        elif d.action == "unprotected" and d.data.get("trip") is True:
            self.trip("KILL_UNPROTECTED", d.sentence, source=d.code)
        elif d.action == "alert" and cfg.on_anomaly and d.data.get("trip") is True:
            self.trip("KILL_ANOMALY", f"{d.code}: {d.sentence}", source=d.code)
        elif (
            cfg.max_price_age_s is not None
            and d.code == "INDEX_UNHEALTHY"  # the basket as a whole, not one stale source
            and d.action == "alert"
        ):
            self.trip("KILL_STALE_PRICE", f"the index price feed is unusable: {d.sentence}")

    # -- polled trips -----------------------------------------------------------------------
    def check_drawdown(self, runner: TripsRun, snap: dict[str, Any]) -> None:
        limit = self.cfg.max_drawdown_pct
        equity, peak = runner.state.equity, runner.state.peak_equity
        if limit is None or equity is None or not peak or peak <= 0:
            return
        drawdown = (peak - equity) / peak * 100.0
        if drawdown > limit:
            self.trip(
                "KILL_DRAWDOWN",
                f"equity {equity:,.2f} is {drawdown:.2f}% below its peak {peak:,.2f} "
                f"(limit [kill] max_drawdown_pct = {limit:g})",
                equity=equity,
                peak=peak,
                drawdown_pct=round(drawdown, 4),
            )

    def price_age(self, symbol: str) -> float:
        """Seconds since the freshest mark price of ``symbol`` (since start if none yet)."""
        seen = self.runner.state.mark_times.get(symbol)
        return time.time() - (seen if seen is not None else self.started)

    async def watch_prices(self, runner: TripsRun) -> None:
        limit = self.cfg.max_price_age_s
        assert limit is not None
        while self.tripped is None:
            await asyncio.sleep(min(1.0, limit / 4.0))
            for symbol in runner.config.strategy.symbols:
                age = self.price_age(symbol)
                if age > limit:
                    self.trip(
                        "KILL_STALE_PRICE",
                        f"no fresh mark price for {symbol} for {age:.1f} s (limit [kill] "
                        f"max_price_age_s = {limit:g})",
                        symbol=symbol,
                        age_s=round(age, 3),
                    )
                    break
