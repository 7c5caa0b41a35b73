"""Client-side rate limiting: one shared, exchange-corrected, explained budget per host.

``build_rate_limiter(setup, exchange)`` is the factory the client's assembly calls. The
package is the handful of concepts it is:

    rules.py    the exchange's published limits, usage headers, Retry-After
    budget.py   the shared state and its maths (spending, leases, pushback, recovery)
    stores.py   where the state is shared: SQLite (default), Redis (``perpbot[redis]``), memory
    host.py     this process's handle on a host's state: the store thread, the mirror
    hooks.py    the HTTP hooks: charge each request, learn from each response
    layer.py    the pipeline layer (waits before signing) and the rules keeper
    explain.py  the sentences for every change and every long wait
    plugin.py   how it attaches to `perpbot run`

See docs/ratelimit.md for the model and the ``[limits]`` keys.
"""

from __future__ import annotations

from typing import Any, Protocol
from urllib.parse import urlsplit

from perpbot.client.waits import Interrupter
from perpbot.client.wire import HttpObservers
from perpbot.config import ExchangeSection, LimitsSection, StrategyFile
from perpbot.events import EventBus
from perpbot.ratelimit.budget import Policy
from perpbot.ratelimit.connections import ConnectionBudget
from perpbot.ratelimit.host import HostBudget
from perpbot.ratelimit.layer import RateLimiter, RateWait, RulesKeeper
from perpbot.ratelimit.rules import from_config
from perpbot.ratelimit.stores import open_store

__all__ = ["LimiterSetup", "RateLimiter", "RateWait", "build_rate_limiter", "exchange_host"]


class LimiterSetup(Protocol):
    """What the factory reads of a client's set-up (``perpbot.client.setup.Setup``)."""

    @property
    def config(self) -> StrategyFile | None: ...
    @property
    def base_url(self) -> str | None: ...
    @property
    def exchange(self) -> ExchangeSection: ...
    @property
    def credentials(self) -> Any: ...  # (perpbot.keys: its ``key_id``)
    @property
    def bus(self) -> EventBus: ...
    @property
    def interrupter(self) -> Interrupter: ...
    @property
    def observers(self) -> HttpObservers: ...


def exchange_host(base_url: str | None, exchange: Any) -> str:
    """The host (and port) the budget belongs to: Binance counts weight per IP and host."""
    if base_url:
        return urlsplit(base_url).netloc or base_url
    api = getattr(exchange, "urls", {}).get("api")
    candidates = list(api.values()) if isinstance(api, dict) else [api]
    for url in candidates:
        if isinstance(url, str) and "://" in url:
            return urlsplit(url).netloc
    return str(getattr(exchange, "id", "exchange"))


def build_rate_limiter(setup: LimiterSetup, exchange: Any) -> RateLimiter:
    limits = setup.config.limits if setup.config is not None else LimitsSection()
    host_name = exchange_host(setup.base_url, exchange)
    timeout_s = setup.exchange.timeout_ms / 1000.0
    store = open_store(limits.store, host_name)
    host = HostBudget(
        store=store,
        policy=Policy.from_config(limits, probe_lease_s=timeout_s + 1.0),
        bus=setup.bus,
        exchange=exchange,
        key_id=setup.credentials.key_id,
    )
    rules = RulesKeeper(
        host=host, refresh_s=limits.refresh_s, fallback=from_config(limits), exchange=exchange
    )
    return RateLimiter(
        host=host,
        rules=rules,
        interrupter=setup.interrupter,
        max_wait_s=limits.max_wait_s,
        description=store.description,
        observers=setup.observers,
        connections=ConnectionBudget(
            host=host, limit=limits.ws_connections, window_s=limits.ws_connection_window_s
        ),
    )
