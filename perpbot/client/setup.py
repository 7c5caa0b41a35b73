"""What a layer factory is given: the validated config, who is calling, and the shared parts.

Each guard's factory (``kill_gate``, ``scope_gate``, ``build_risk_gate``,
``build_rate_limiter``, ``build_retrier``) receives the same ``Setup``; ``perpbot.app``
builds it and decides the order of the layers. ``Setup.observers`` is the transport's HTTP
hook registry, handed to whoever hooks in. This module knows no guard.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from perpbot.client.account import AccountView
from perpbot.client.waits import Interrupter
from perpbot.client.wire import HttpObservers
from perpbot.config import ExchangeSection, StrategyFile
from perpbot.events import EventBus


@dataclass
class Credentials:
    """An API key pair and where it came from. Never printed, never logged."""

    api_key: str | None
    secret: str | None = field(repr=False)
    profile: str | None = None
    grant: Any = None  # the profile's scope grant (perpbot.keys), None for paper accounts

    def __repr__(self) -> str:  # belt and braces: no secret in any repr or traceback
        return f"Credentials(profile={self.profile!r}, key_id={self.key_id!r})"

    @property
    def key_id(self) -> str:
        """A stable, non-secret identifier of the key (shared budgets are keyed on it)."""
        if not self.api_key:
            return "anonymous"
        return hashlib.sha256(self.api_key.encode()).hexdigest()[:16]


def account_id(exchange_id: str, url: str | None, key_id: str) -> str:
    """Which account a run trades on, without any secret: exchange, endpoint, key hash
    (bots sharing one find each other by it: perpbot.kill.sweep)."""
    return f"{exchange_id}|{url or ''}|{key_id}"


@dataclass
class Setup:
    """Everything a layer factory may need."""

    exchange: ExchangeSection
    command: str
    run_id: str
    bus: EventBus
    credentials: Credentials
    base_url: str | None = None
    config: StrategyFile | None = None
    strategy: str | None = None
    interrupter: Interrupter = field(default_factory=Interrupter)
    account: AccountView = field(default_factory=AccountView)
    # `perpbot run` only: the run's latest mark prices (exchange-reported, per symbol). None
    # for a command without a run (the risk gate then has no marks of its own).
    marks: Callable[[], Mapping[str, float]] | None = None
    # Reference prices a layer publishes for the others (the risk layer's index basket): the
    # ScopeGate values an order at the worst of its own price, the mark and these.
    reference_prices: list[Callable[[str], float | None]] = field(default_factory=list)
    # The hooks the transport runs around each HTTP request (its registry, given to it by
    # perpbot.app.pipeline): the layers and plugins that hook in take it from here.
    observers: HttpObservers = field(default_factory=HttpObservers)

    @property
    def profile(self) -> str | None:
        return self.credentials.profile

    @property
    def in_run(self) -> bool:
        """True for `perpbot run` (its orders carry the run's client-id tag)."""
        return self.marks is not None
