"""Route table types shared by the handler modules and the server's dispatcher.

Handlers are plain synchronous functions of (engine, ctx): the engine is single-threaded
on the event loop, so there is nothing to await, and keeping them synchronous keeps the
per-request cost low enough for thousands of requests per second.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from perpbot.sim import errors as E
from perpbot.sim.engine import Engine
from perpbot.sim.models import Account


@dataclass(slots=True)
class Ctx:
    method: str
    path: str
    params: dict[str, str]
    account: Account | None
    ip: str

    @property
    def acct(self) -> Account:
        if self.account is None:  # pragma: no cover - routes guarantee it
            raise E.SimError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return self.account


Handler = Callable[[Engine, Ctx], Any]


@dataclass(frozen=True, slots=True)
class Route:
    handler: Handler
    permission: str | None = None  # None = public; else the apiRestrictions flag needed


def int_param(
    params: Mapping[str, str],
    name: str,
    default: int | None = None,
    lo: int | None = None,
    hi: int | None = None,
) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise E.illegal(name) from None
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise E.SimError(-1130, f"Data sent for parameter '{name}' is not valid.")
    return value


def window(
    items: list[Any],
    time_of: Callable[[Any], int],
    params: Mapping[str, str],
    default_limit: int,
    max_limit: int,
) -> list[Any]:
    """Binance-style startTime/endTime/limit selection over time-ordered records."""
    start = int_param(params, "startTime")
    end = int_param(params, "endTime")
    limit = int_param(params, "limit", default_limit, 1, max_limit) or default_limit
    chosen = [
        i
        for i in items
        if (start is None or time_of(i) >= start) and (end is None or time_of(i) <= end)
    ]
    return chosen[:limit] if start is not None else chosen[-limit:]
