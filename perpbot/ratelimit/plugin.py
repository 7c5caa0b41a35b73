"""How the rate limiter attaches to `perpbot run`.

- a tick provider: the ``rate`` section of ticks.jsonl and `perpbot status` (weight used,
  limit, the exchange's nominal limit, order counts, the last change and why);
- a stop cuts every rate-limit or backoff wait short at once (a request held back for a
  Retry-After must not go out after the trader asked the bot to stop); the waits of the
  final clean-up (cancelling this run's orders) are allowed again once the strategy is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from perpbot.engine.hooks import AttachableRun, RunPort

STOP_PREFIX = "stop"


def attach(runner: AttachableRun) -> None:
    async def on_connected(r: RunPort) -> None:
        limiter = r.client.pipeline.layer("ratelimit")
        if limiter is not None:

            def provide() -> dict[str, Any]:
                return {"rate": limiter.snapshot(wait=False)}

            r.tick_providers.append(provide)

    async def cut_waits_on_stop(r: RunPort) -> None:
        await r.stop_event.wait()
        interrupter = r.interrupter
        if not interrupter.interrupted:
            interrupter.interrupt(f"{STOP_PREFIX}: {r.end_reason}")

    async def allow_cleanup_waits(r: RunPort) -> None:
        interrupter = r.interrupter
        if (interrupter.reason or "").startswith(STOP_PREFIX + ":"):
            interrupter.reset()

    runner.on_connected.append(on_connected)
    runner.background.append(cut_waits_on_stop)
    runner.before_stop.append(allow_cleanup_waits)
