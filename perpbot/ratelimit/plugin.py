"""How the rate limiter attaches to `perpbot run`.

- a tick provider: the ``rate`` section of ticks.jsonl and `perpbot status` (weight used,
  limit, the exchange's nominal limit, order counts, the last change and why);
- a stop cuts every rate-limit or backoff wait short at once (a request held back for a
  Retry-After must not go out after the trader asked the bot to stop); the waits of the
  final clean-up (cancelling this run's orders) are allowed again once the strategy is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import asyncio

    from perpbot.client.guarded import GuardedClient
    from perpbot.client.waits import Interrupter
    from perpbot.engine.hooks import Background, BeforeStop, OnConnected, TickProviders


class RateRun(Protocol):
    """What the rate limiter's wiring uses of a run."""

    stop_event: asyncio.Event
    end_reason: str
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
