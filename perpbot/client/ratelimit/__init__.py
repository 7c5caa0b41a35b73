"""Client-side rate limiting: one shared, exchange-corrected, explained budget per host.

``build_rate_limiter(setup, exchange)`` is the factory ``perpbot.app.pipeline`` calls.
See docs/ratelimit.md for the model and the ``[limits]`` keys.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from perpbot.client.ratelimit.host import HostBudget
from perpbot.client.ratelimit.layer import RateLimiter, RateWait
from perpbot.client.ratelimit.rules import from_config
from perpbot.client.ratelimit.rules_keeper import RulesKeeper
from perpbot.client.ratelimit.state import Policy
from perpbot.client.ratelimit.store import open_store
from perpbot.config import LimitsSection

if TYPE_CHECKING:
    from perpbot.client.setup import Setup

__all__ = ["RateLimiter", "RateWait", "build_rate_limiter", "exchange_host"]


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


def build_rate_limiter(setup: Setup, exchange: Any) -> RateLimiter:
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
    rules = RulesKeeper(host, limits.refresh_s, from_config(limits), exchange)
    return RateLimiter(
        host, rules, setup.interrupter, max_wait_s=limits.max_wait_s, description=store.description
    )
