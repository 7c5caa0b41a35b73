"""How the rate limiter attaches to `perpbot run`.

- a tick provider: the ``rate`` section of ticks.jsonl and `perpbot status` (weight used,
  limit, the exchange's nominal limit, order counts, the reserve and what is used of it, the
  last change and why);
- at start, one warning (``RATE_RESERVE_DEADMAN``) when the dead-man's refreshes on the
  strategy's symbols would take more than half the reserve (perpbot.ratelimit.reserve);
- a stop cuts every rate-limit or backoff wait short at once (a request held back for a
  Retry-After must not go out after the trader asked the bot to stop); the waits of the
  final clean-up (cancelling this run's orders) are allowed again once the strategy is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from perpbot.events import Decision
from perpbot.ratelimit.reserve import DEADMAN_METHOD, DEADMAN_REFRESH_FRACTION, deadman_warning

if TYPE_CHECKING:
    import asyncio

    from perpbot.client.guarded import GuardedClient
    from perpbot.client.waits import Interrupter
    from perpbot.config import StrategyFile
    from perpbot.engine.hooks import Background, BeforeStop, OnConnected, TickProviders
    from perpbot.events import EventBus


class RateRun(Protocol):
    """What the rate limiter's wiring uses of a run."""

    stop_event: asyncio.Event
    end_reason: str
    config: StrategyFile
    bus: EventBus
    on_connected: OnConnected
    background: Background
    before_stop: BeforeStop
    tick_providers: TickProviders

    @property
    def client(self) -> GuardedClient: ...
    @property
    def interrupter(self) -> Interrupter: ...


STOP_PREFIX = "stop"


def attach(runner: RateRun) -> None:
    async def on_connected(r: RateRun) -> None:
        limiter = r.client.pipeline.layer("ratelimit")
        if limiter is not None:

            def provide() -> dict[str, Any]:
                return {"rate": limiter.snapshot(wait=False)}

            r.tick_providers.append(provide)
            warn_if_deadman_eats_reserve(r, limiter.snapshot(wait=False))

    async def cut_waits_on_stop(r: RateRun) -> None:
        await r.stop_event.wait()
        interrupter = r.interrupter
        if not interrupter.interrupted:
            interrupter.interrupt(f"{STOP_PREFIX}: {r.end_reason}")

    async def allow_cleanup_waits(r: RateRun) -> None:
        interrupter = r.interrupter
        if (interrupter.reason or "").startswith(STOP_PREFIX + ":"):
            interrupter.reset()

    runner.on_connected.append(on_connected)
    runner.background.append(cut_waits_on_stop)
    runner.before_stop.append(allow_cleanup_waits)


def warn_if_deadman_eats_reserve(r: RateRun, snap: dict[str, Any]) -> None:
    """One explained line at start when the dead-man's refreshes would take more than half
    the rate reserve (then a kill's cancels could wait for the window)."""
    if not snap.get("weight_limit"):  # no published limit: no reserve to speak of
        return
    kill = r.config.kill
    if not kill.deadman or not callable(getattr(r.client.exchange, DEADMAN_METHOD, None)):
        return
    sentence = deadman_warning(
        symbols=len(r.config.strategy.symbols),
        refresh_s=kill.deadman_refresh_s or kill.deadman_countdown_s * DEADMAN_REFRESH_FRACTION,
        countdown_s=kill.deadman_countdown_s,
        reserve=snap.get("reserve") or {},
        cap=int(snap["weight_limit"]),
    )
    if sentence is None:
        return
    # a "warn" decision: the run's output prints it on stderr (engine/output.py)
    r.bus.publish(
        Decision(layer="ratelimit", action="warn", code="RATE_RESERVE_DEADMAN", sentence=sentence)
    )
