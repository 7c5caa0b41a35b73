"""Assembling the pipeline: the one place that decides which layers run, in which order.

    KillGate -> ScopeGate -> RiskGate -> RateLimiter -> Retrier -> Transport

Each layer factory receives the same ``Setup`` (validated config, command, profile, bus,
credentials identity, interrupter) and returns a layer or None when its concern is off.
The gates depend on ``perpbot.client``; the client never depends on a gate.

Around each HTTP request the transport runs ``Setup.observers`` (perpbot.client.wire), given
to the exchange here and to each concern that hooks in; nothing finds it on the ccxt object.
Its ``before`` hooks run in this order:

    audit     the signed log's wire look (first=True: refuses before anything is charged)
    ratelimit charges the request, may wait (HttpBudget.before_http; its after_http reads
              the response's usage headers)
    kill      the kill switch's last look (last=True: after the limiter's waits)
    orders    the run's orders: once the stop cancels, no create leaves (last=True, added
              after the kill switch's; app/engine_parts.py)
"""

from __future__ import annotations

from typing import Any

from perpbot.client.guarded import GuardedClient
from perpbot.client.pipeline import Layer, Pipeline
from perpbot.client.retry import build_retrier
from perpbot.client.setup import Setup
from perpbot.client.transport import Transport, make_exchange
from perpbot.keys.gate import scope_gate
from perpbot.kill.gate import kill_gate
from perpbot.ratelimit import build_rate_limiter
from perpbot.risk.gate import build_risk_gate


def build_layers(setup: Setup, exchange: Any) -> list[Layer]:
    """The guard layers, outermost first. Each concern adds itself here and nowhere else."""
    layers: list[Layer | None] = [
        kill_gate(setup),  # KillGate (perpbot.kill): fails closed, first
        scope_gate(setup, exchange),  # ScopeGate (perpbot.keys): the grant, params merged
        build_risk_gate(setup, exchange),  # RiskGate (perpbot.risk): pre-trade checks
        build_rate_limiter(setup, exchange),  # RateLimiter: wait for or refuse budget
        build_retrier(setup),  # Retrier (perpbot.client.retry): tenacity per method class
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
        observers=setup.observers,
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
