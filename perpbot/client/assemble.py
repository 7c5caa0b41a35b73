"""Assembling the pipeline: the one place that decides which layers run, in which order.

    KillGate -> ScopeGate -> RiskGate -> RateLimiter -> Retrier -> Transport

Each layer factory receives the same ``Setup`` (validated config, command, profile, bus,
credentials identity, interrupter) and returns a layer or None when its concern is off.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from perpbot.client.account import AccountView
from perpbot.client.guarded import GuardedClient
from perpbot.client.pipeline import Layer, Pipeline
from perpbot.client.transport import Transport, make_exchange
from perpbot.client.waits import Interrupter
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
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def profile(self) -> str | None:
        return self.credentials.profile


def build_layers(setup: Setup, exchange: Any) -> list[Layer]:
    """The guard layers, outermost first. Each concern adds itself here and nowhere else."""
    from perpbot.client.retry import build_retrier
    from perpbot.keys.gate import scope_gate
    from perpbot.kill.gate import kill_gate
    from perpbot.ratelimit import build_rate_limiter
    from perpbot.risk.gate import build_risk_gate

    layers: list[Layer | None] = [
        kill_gate(setup, exchange),  # KillGate (perpbot.kill)
        scope_gate(setup, exchange),  # ScopeGate (perpbot.keys)
        build_risk_gate(setup, exchange),  # RiskGate (perpbot.risk)
        build_rate_limiter(setup, exchange),  # RateLimiter (perpbot.ratelimit)
        build_retrier(setup),  # Retrier (perpbot.client.retry)
    ]
    return [layer for layer in layers if layer is not None]


def build_client(setup: Setup) -> GuardedClient:
    """The ccxt exchange wrapped in the full pipeline (markets not loaded yet)."""
    ex_cfg = setup.exchange
    exchange = make_exchange(
        ex_cfg.id,
        api_key=setup.credentials.api_key,
        secret=setup.credentials.secret,
        base_url=setup.base_url,
        sandbox=ex_cfg.sandbox,
        timeout_ms=ex_cfg.timeout_ms,
    )
    transport = Transport(exchange, setup.bus)
    pipeline = Pipeline(build_layers(setup, exchange), transport, setup.bus)
    return GuardedClient(
        pipeline,
        exchange,
        command=setup.command,
        profile=setup.profile,
        run_id=setup.run_id,
    )
