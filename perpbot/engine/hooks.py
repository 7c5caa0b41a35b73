"""What a concern sees of a run: two narrow, typed interfaces instead of the runner.

- ``RunHooks``: where a concern attaches (the lists ``perpbot.app.plugins`` fills, in the
  order it declares). The phases, in the order a run goes through them:

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

- ``RunPort``: what a concern may read or ask of the run while it is live.

The concrete run (perpbot.app.lifecycle.Runner) provides both; tests pass small stand-ins.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from perpbot.client.account import AccountView
    from perpbot.client.guarded import GuardedClient
    from perpbot.client.request import OrderSpec
    from perpbot.client.setup import Credentials
    from perpbot.client.waits import Interrupter
    from perpbot.config import ExchangeSection, LoadedStrategy, StrategyFile
    from perpbot.engine.conditional import ConditionalOrders
    from perpbot.engine.events import EngineEvents
    from perpbot.engine.journal import RunJournal
    from perpbot.engine.ledger import Ledger
    from perpbot.engine.output import RunOutput
    from perpbot.engine.state import PositionSnapshot
    from perpbot.errors import PerpbotError
    from perpbot.events import EventBus

OrdersLeft = dict[str, list[dict[str, Any]]]  # symbol -> this run's orders still listed


class PublicConnection(Protocol):
    """A market-data-only connection to another venue (what ``open_public`` returns)."""

    @property
    def client(self) -> GuardedClient: ...
    async def close(self) -> None: ...


class RunPort(Protocol):
    """The live run, as the concerns (kill, risk, audit, keys, rate limit, status) use it."""

    run_id: str
    config: StrategyFile
    loaded: LoadedStrategy
    bus: EventBus
    output: RunOutput
    ledger: Ledger
    started: float
    stop_event: asyncio.Event
    end_reason: str
    exit_code: int
    fatal: PerpbotError | None
    journal: RunJournal
    engine_events: EngineEvents
    summary_extras: dict[str, Any]
    conditional: ConditionalOrders | None
    stop_deadline: float | None  # monotonic: when the stop must be done (None until it began)

    @property
    def client(self) -> GuardedClient: ...
    @property
    def account(self) -> AccountView: ...
    @property
    def interrupter(self) -> Interrupter: ...
    @property
    def credentials(self) -> Credentials: ...
    @property
    def positions(self) -> dict[str, PositionSnapshot]: ...
    @property
    def marks(self) -> dict[str, float]: ...
    @property
    def mark_times(self) -> dict[str, float]: ...
    @property
    def equity(self) -> float | None: ...
    @property
    def peak_equity(self) -> float | None: ...

    def snapshot(self) -> dict[str, Any]: ...
    def request_stop(self, reason: str, exit_code: int = 0) -> None: ...
    async def place(self, spec: OrderSpec) -> dict[str, Any]: ...
    async def cancel(self, order: dict[str, Any] | str, symbol: str | None) -> Any: ...
    async def cancel_account_wide(self, symbol: str) -> Any: ...
    def adopt(self, order: dict[str, Any]) -> None: ...
    def is_own_order(self, order: dict[str, Any]) -> bool: ...
    async def open_public(self, exchange: ExchangeSection, *, command: str) -> PublicConnection: ...


Hook = Callable[[Any], Awaitable[None]]  # receives the RunPort


class RunHooks(Protocol):
    """The hook lists of a run (see the module doc for when each runs)."""

    on_connected: list[Hook]
    background: list[Callable[[Any], Coroutine[Any, Any, None]]]
    after_tick: list[Callable[[Any, dict[str, Any]], None]]
    before_stop: list[Hook]
    release: list[Callable[[Any], Awaitable[str | None]]]
    left_armed: list[Callable[[OrdersLeft], str | None]]
    after_stop: list[Callable[[Any], None]]
    tick_providers: list[Callable[[], dict[str, Any]]]
    summary_extras: dict[str, Any]
    kill_state_fn: Callable[[], Any]


class AttachableRun(RunPort, RunHooks, Protocol):
    """What a concern's ``attach`` receives: the hooks to fill and the run they act on."""
