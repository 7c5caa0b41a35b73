"""The exchange-side dead-man switch: orders die with the bot, even if the bot dies badly.

At start the run arms the exchange's cancel-all-after timer (Binance ``countdownCancelAll``)
for each of its symbols; a background task re-arms each symbol once half its countdown has
passed since the exchange last accepted it (or every ``deadman_refresh_s`` when set) while
the engine's heartbeat (the tick loop) is alive. A refresh that fails is tried again every
``retry_s`` (a twentieth of the countdown, 0.5 s at least) until one is accepted: half the
countdown is the slack for those retries. Each refresh costs weight 10 (Binance), so the
default 60 s countdown costs 20 weight a minute per symbol (a third: 30).

If the process is SIGKILLed, the machine loses power or the engine wedges, nobody refreshes
and the exchange cancels the open orders when the countdown lapses. A hung strategy counts
as wedged: its ticks stop, so refreshing stops ``tick_interval + countdown`` after its last
tick.

Refreshing also stops as soon as the kill switch makes the run cancel (a wedged cancel is
then finished by the exchange). It continues at ``halt``: halt promises that the open
orders stay while the bot is alive. The stop disarms the timer (countdown 0) only once
the run's orders are confirmed gone at the exchange; otherwise it stays armed, refreshed no
more, and the run says which orders it covers and when it fires. Where the kill switch could
not confirm its orders gone (what `perpbot kill` announced), it stays armed too.

Binance keeps one countdown per (account, symbol): bots sharing a symbol share it
(perpbot.kill.sweep). The last one out disarms it: a stop leaves it armed, unrefreshed,
while another bot runs on the symbol (it refreshes it) or orders of another perpbot run (a
dead run's) stand there (the exchange cancels them). Symbols where the account holds orders
the bot did not place get no countdown when ``[kill] foreign_orders = "no_deadman"``.
Exchanges without such a timer are reported at start (the run goes on: the watchdog and the
stop path still cancel).
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any, Protocol

from perpbot.client.maintenance import is_maintenance
from perpbot.client.request import reducing_risk
from perpbot.errors import describe_error
from perpbot.events import Decision

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient
    from perpbot.config import KillSection, StrategyFile
    from perpbot.engine.hooks import (
        AfterTick,
        Background,
        BeforeStop,
        BeforeTrade,
        LeftArmed,
        OnConnected,
        OrdersLeft,
        Release,
    )
    from perpbot.events import EventBus
    from perpbot.kill.sweep import StartSweep
    from perpbot.kill.watchdog import KillWatchdog


class DeadmanRun(Protocol):
    """What the dead-man switch uses of a run: its client and every phase of its life."""

    config: StrategyFile
    bus: EventBus
    summary_extras: dict[str, Any]
    on_connected: OnConnected
    after_tick: AfterTick
    before_trade: BeforeTrade
    background: Background
    before_stop: BeforeStop
    release: Release
    left_armed: LeftArmed
    stop_deadline: float | None  # monotonic: when the stop must be done (None until it began)

    @property
    def client(self) -> GuardedClient: ...


COUNTDOWN_METHOD = "fapiprivate_post_countdowncancelall"
REFRESH_FRACTION = 0.5  # of the countdown passed since it was last set: refresh it then
SAY_MARGIN_S = 0.1


def has_countdown(exchange: Any) -> bool:
    return callable(getattr(exchange, COUNTDOWN_METHOD, None))


class Deadman:
    def __init__(
        self,
        runner: DeadmanRun,
        cfg: KillSection,
        watchdog: KillWatchdog,
        sweep: StartSweep | None = None,
    ) -> None:
        self.runner = runner
        self.watchdog = watchdog
        self.sweep = sweep
        self.countdown_ms = int(cfg.deadman_countdown_s * 1000)
        self.refresh_s = cfg.deadman_refresh_s or cfg.deadman_countdown_s * REFRESH_FRACTION
        self.retry_s = min(self.refresh_s, max(cfg.deadman_countdown_s / 20.0, 0.5))
        self.stale_after_s = runner.config.strategy.tick_interval + cfg.deadman_countdown_s
        self.heartbeat = time.monotonic()
        self.armed: list[str] = []
        self.refreshes = 0
        self.paused: str | None = None  # why refreshing stopped, once it did
        self.last_set: dict[str, float] = {}  # symbol -> epoch s the countdown was last set
        self.due: dict[str, float] = {}  # symbol -> monotonic s its next refresh is due
        self.info: dict[str, Any] = {"countdown_s": cfg.deadman_countdown_s}

    def attach(self) -> None:
        """Arm once connected (the kill switch attaches last, so after every start-up check);
        stop refreshing when the stop begins; disarm only in ``release``, once the run's
        orders are confirmed gone; otherwise leave it armed and say what it covers."""
        r = self.runner
        r.on_connected.append(self.arm)
        r.after_tick.append(self.beat)
        r.before_trade.append(self.rearm_if_lapsed)
        r.background.append(self.refresher)
        r.before_stop.append(self.stop_refreshing)
        r.release.append(self.disarm)
        r.left_armed.append(self.leave_armed)
        r.summary_extras["deadman"] = self.info

    def _say(self, action: str, code: str, sentence: str, **data: Any) -> None:
        self.runner.bus.publish(Decision("kill", action, code, sentence, data))  # type: ignore[arg-type]

    async def _send(
        self, symbols: list[str], countdown_ms: int, *, quiet: bool = False
    ) -> list[tuple[str, str]]:
        """Set the countdown on each symbol at once; the (symbol, problem) that failed
        (``quiet``: leaving out "under maintenance", said once per window elsewhere)."""
        client = self.runner.client
        sent_at, sent_mono = time.time(), time.monotonic()
        results = await asyncio.gather(
            *(client.countdown_cancel_all(s, countdown_ms) for s in symbols),
            return_exceptions=True,
        )
        for s, res in zip(symbols, results, strict=True):
            if not isinstance(res, BaseException):
                self.last_set[s] = sent_at
                self.due[s] = sent_mono + self.refresh_s
            else:  # not accepted: try again soon, the countdown runs from the last one
                self.due[s] = time.monotonic() + self.retry_s
        return [
            (s, describe_error(res))
            for s, res in zip(symbols, results, strict=True)
            if isinstance(res, BaseException) and not (quiet and is_maintenance(res))
        ]

    # -- hooks ------------------------------------------------------------------------------
    async def arm(self, runner: DeadmanRun) -> None:
        skip = self.sweep.no_deadman if self.sweep is not None else {}
        symbols = [s for s in runner.config.strategy.symbols if s not in skip]
        if skip:
            self.info["not_armed"] = dict(skip)
        if not symbols:
            return
        if not has_countdown(runner.client.exchange):
            why = f"exchange {runner.config.exchange.id!r} has no cancel-all-after timer"
            self.info["unavailable"] = why
            self._say(
                "alert",
                "KILL_DEADMAN_UNAVAILABLE",
                f"no exchange-side dead-man switch: {why}; if this process dies, its open "
                "orders stay on the exchange",
            )
            return
        failed = dict(await self._send(symbols, self.countdown_ms))
        self.armed = [s for s in symbols if s not in failed]
        self.heartbeat = time.monotonic()
        self.info["armed"] = list(self.armed)
        if failed:
            self.info["unavailable"] = "; ".join(f"{s}: {why}" for s, why in failed.items())
            self._say(
                "alert",
                "KILL_DEADMAN_UNAVAILABLE",
                "the exchange refused the dead-man switch (countdownCancelAll) for "
                f"{', '.join(failed)}: {self.info['unavailable']}",
            )
        if self.armed:
            self._say(
                "info",
                "KILL_DEADMAN_ARMED",
                f"exchange dead-man switch armed on {', '.join(self.armed)}: the exchange "
                f"cancels their open orders if this bot stops refreshing for "
                f"{self.countdown_ms / 1000:g} s (refreshed every {self.refresh_s:g} s)",
                countdown_ms=self.countdown_ms,
            )

    def beat(self, runner: DeadmanRun, snap: dict[str, Any]) -> None:
        self.heartbeat = time.monotonic()

    def lapsed(self) -> list[str]:
        """Armed symbols whose countdown has fired at the exchange, or will within a retry
        period: last accepted a countdown or more ago (a maintenance window, a blind spell).
        The exchange then cancelled their orders and, like Binance after it fires, holds no
        countdown for them."""
        now = time.time()
        limit = self.countdown_ms / 1000.0 - self.retry_s
        return [s for s in self.armed if now - self.last_set.get(s, 0.0) >= limit]

    async def rearm_if_lapsed(self, runner: DeadmanRun) -> str | None:
        """Before the strategy trades: arm the countdown again where it lapsed, so no new
        order stands unprotected; None once armed, else why the tick waits."""
        lapsed = self.lapsed() if not self.watchdog.stopping else []
        if not lapsed:
            return None
        ages = {s: time.time() - self.last_set.get(s, 0.0) for s in lapsed}
        failed = dict(await self._send(lapsed, self.countdown_ms))
        rearmed = [s for s in lapsed if s not in failed]
        if rearmed:
            self.paused = None
            self.heartbeat = time.monotonic()
            self.info["rearmed"] = self.info.get("rearmed", 0) + 1
            self._say(
                "info",
                "KILL_DEADMAN_REARMED",
                f"the dead-man countdown on {', '.join(rearmed)} had lapsed (last set "
                f"{max(ages[s] for s in rearmed):.0f} s ago: the exchange cancelled the "
                f"orders there); armed again ({self.countdown_ms / 1000:g} s) before the "
                "strategy trades",
                symbols=rearmed,
            )
        if failed:
            return (
                "the dead-man countdown lapsed and could not be armed again ("
                + "; ".join(f"{s}: {why}" for s, why in failed.items())
                + ")"
            )
        return None

    def should_refresh(self) -> str | None:
        """None when the countdown should be refreshed now, else why not."""
        if self.watchdog.stopping:
            return "the kill switch tripped"
        age = time.monotonic() - self.heartbeat
        if age > self.stale_after_s:
            return f"the engine's last tick was {age:.0f} s ago (limit {self.stale_after_s:g} s)"
        return None

    def _next_wait(self) -> float:
        """Seconds until the next symbol's refresh is due (a retry period when none is)."""
        due = [self.due[s] for s in self.armed if s in self.due]
        if not due or self.paused is not None:
            return self.retry_s
        return min(max(min(due) - time.monotonic(), 0.0), self.refresh_s)

    async def refresher(self, runner: DeadmanRun) -> None:
        while True:
            await asyncio.sleep(self._next_wait())
            if not self.armed:
                continue
            why_not = self.should_refresh()
            if why_not is not None:
                if self.paused is None:
                    self.paused = self.info["stopped_refreshing"] = why_not
                    self._say(
                        "info",
                        "KILL_DEADMAN_LAPSING",
                        f"no longer refreshing the exchange dead-man switch ({why_not}): the "
                        f"exchange cancels the open orders within {self.countdown_ms / 1000:g} s",
                    )
                continue
            self.paused = None
            now = time.monotonic()
            due = [s for s in self.armed if self.due.get(s, 0.0) <= now]
            if not due:
                continue
            failed = await self._send(due, self.countdown_ms, quiet=True)
            self.refreshes += 1
            self.info["refreshes"] = self.refreshes
            for s, why in failed:
                self._say(
                    "alert",
                    "KILL_DEADMAN_REFRESH_FAILED",
                    f"refreshing the dead-man switch on {s} failed: {why}",
                )

    async def stop_refreshing(self, runner: DeadmanRun) -> None:
        """The stop began: the countdown is refreshed no more (the refresher task has ended
        with the tick loop); it stays armed until ``disarm`` or until it fires."""
        if self.armed and self.paused is None:
            self.paused = self.info["stopped_refreshing"] = "the run is stopping"

    def leave_armed(self, left: OrdersLeft) -> str | None:
        """The stop could not confirm the run's orders gone: keep the countdown armed (the
        exchange finishes the job) and say when it fires on each symbol."""
        parts = []
        for symbol in left:
            if symbol in self.armed and symbol in self.last_set:
                fires = self.last_set[symbol] + self.countdown_ms / 1000.0
                at = time.strftime("%H:%M:%S UTC", time.gmtime(fires))
                parts.append(
                    f"{symbol}: left to the exchange's countdown, which cancels them at {at} "
                    f"(in {max(fires - time.time(), 0.0):.0f} s)"
                )
            else:
                parts.append(f"{symbol}: no dead-man countdown is armed there")
        self.info["left_armed"] = {
            s: [o.get("clientOrderId") for o in o_] for s, o_ in left.items()
        }
        sentence = "; ".join(parts)
        self._say("alert", "KILL_DEADMAN_LEFT_ARMED", f"dead-man countdown left armed: {sentence}")
        return sentence + "."

    def left_by_kill(self) -> list[str]:
        """Symbols where the kill switch's cancels left orders open (or could not tell)."""
        report = self.watchdog.report or {}
        symbols = {str(o.get("symbol")) for o in report.get("left_open") or []}
        symbols |= set(report.get("unconfirmed") or [])
        return sorted(s for s in symbols if s in self.armed)

    async def disarm(self, runner: DeadmanRun) -> str | None:
        """Disarm the countdown, except where the kill switch left orders: there it stays
        armed (refreshing stopped when the switch tripped) so the exchange cancels them.

        Bounded by the stop (``runner.stop_deadline``): what it could not do in time (or at
        all) is returned as one sentence, for the stop to say; None when nothing is left."""
        if not self.armed:
            return None
        # a little before the stop's own bound, so that what is left undone is said here
        until = None if runner.stop_deadline is None else runner.stop_deadline - SAY_MARGIN_S
        keep = self.left_by_kill()
        if keep:
            self.info["kept_armed"] = keep
            self._say(
                "alert",
                "KILL_DEADMAN_KEPT",
                f"the dead-man countdown on {', '.join(keep)} stays armed and is no longer "
                "refreshed: the kill switch could not confirm its orders there gone, so the "
                f"exchange cancels them within {self.countdown_ms / 1000:g} s of the last refresh",
                symbols=keep,
            )
            self.armed = [s for s in self.armed if s not in keep]
        undone: dict[str, str] = {}  # symbol -> why its countdown is left armed, not by design
        if self.armed and self.sweep is not None:
            shared = await self.sweep.keep_armed(self.armed, until)
            for symbol, kept in shared.items():
                self._say(
                    "info",
                    "KILL_DEADMAN_SHARED",
                    f"the dead-man countdown on {symbol} is left armed (this run no longer "
                    f"refreshes it): {kept.why}; the last bot out disarms it",
                    symbol=symbol,
                )
                if kept.unlisted:
                    undone[symbol] = kept.why
            if shared:
                self.info["shared_kept"] = {s: kept.why for s, kept in shared.items()}
            self.armed = [s for s in self.armed if s not in shared]
        if self.armed:
            with reducing_risk():  # part of the stop: never held by the rate budget's store
                failed = await self._send_until(self.armed, until)
            self.info["disarmed"] = not failed
            for s, why in failed:
                undone[s] = f"disarming it failed ({why})"
                self._say(
                    "alert",
                    "KILL_DEADMAN_DISARM_FAILED",
                    f"disarming the dead-man switch on {s} failed ({why}): the exchange may "
                    f"cancel orders on {s} within {self.countdown_ms / 1000:g} s",
                )
            self.armed = []
        if not undone:
            return None
        self.info["left_undone"] = undone
        return (
            "the stop left the exchange's dead-man countdown armed, refreshed no more, "
            + ("; ".join(f"on {s}: {why}" for s, why in undone.items()))
            + (
                f": it cancels every order of the account on those symbols "
                f"{self.countdown_ms / 1000:g} s after this run's last refresh "
                "(this run's own orders are confirmed gone)"
            )
        )

    async def _send_until(self, symbols: list[str], until: float | None) -> list[tuple[str, str]]:
        """Disarm (countdown 0) on ``symbols`` before ``until``; the (symbol, problem) left."""
        remaining = None if until is None else until - time.monotonic()
        if remaining is not None and remaining <= 0:
            return [(s, "not sent: the stop's bound was reached") for s in symbols]
        try:
            return await asyncio.wait_for(self._send(symbols, 0), remaining)
        except TimeoutError:
            return [(s, "no answer within the stop's bound") for s in symbols]
