"""What a concern sees of a run: a Protocol of its own, naming exactly what it uses.

Each concern declares, next to its ``attach``, a Protocol with the hook lists it fills and
the parts of the run it reads or calls (``OpsRun`` in perpbot/ops/plugin.py, ``KillRun``
in perpbot/kill/attach.py, ...). Only perpbot/app knows the concrete run
(perpbot.app.lifecycle.Runner, tests/architecture/test_runner_boundary.py); it has every
member, and tests pass small stand-ins.

The hook lists (their types are here, once) are filled by ``perpbot.app.plugins`` in the
order it declares. The phases, in the order a run goes through them:

    on_connected   after every start-up check passed (symbols exist, grants hold); the
                   kill switch attaches last, so its dead-man countdown arms last
    background     tasks alive while the run trades (watchdog, refresher, index polls)
    after_tick     after each reconcile + status snapshot
    before_stop    the strategy has stopped; before the final cancel
    release        only once this run's orders are confirmed gone at the exchange
                   (disarming the dead-man countdown belongs here, never earlier); each
                   hook ends by ``stop_deadline`` and returns a sentence saying what it
                   left undone (or None)
    left_armed     instead of ``release`` when orders could not be confirmed gone: each
                   hook returns a sentence saying what is left to whom (or None)
    after_stop     last, after the exchange connection is closed (the signed log's close)
    tick_providers each returns a section of the tick snapshot (ticks.jsonl, status file)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from perpbot.client.guarded import GuardedClient

OrdersLeft = dict[str, list[dict[str, Any]]]  # symbol -> this run's orders still listed

# A hook receives the run; each concern types that argument with its own Protocol.
OnConnected = list[Callable[[Any], Awaitable[None]]]
Background = list[Callable[[Any], Coroutine[Any, Any, None]]]
AfterTick = list[Callable[[Any, dict[str, Any]], None]]
# after the tick's state is current, before the strategy trades: None to go on, else why the
# strategy's tick is skipped (said once per reason)
BeforeTrade = list[Callable[[Any], Awaitable[str | None]]]
BeforeStop = list[Callable[[Any], Awaitable[None]]]
Release = list[Callable[[Any], Awaitable[str | None]]]  # what it left undone, or None
LeftArmed = list[Callable[[OrdersLeft], str | None]]
AfterStop = list[Callable[[Any], None]]
TickProviders = list[Callable[[], dict[str, Any]]]


class PublicConnection(Protocol):
    """A market-data-only connection to another venue (what ``open_public`` returns)."""

    @property
    def client(self) -> GuardedClient: ...
    async def close(self) -> None: ...
