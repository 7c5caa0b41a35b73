"""A response's rate-limit headers, read once, as the response arrives.

Binance names its usage counters by kind and window (``X-MBX-USED-WEIGHT-1M``,
``X-MBX-ORDER-COUNT-10S``), in any case, and says how long to back off in ``Retry-After``
(delta-seconds). The transport reads them here into the ``HttpRecord``
(``HttpRecord.read_headers``); the rate limiter takes the usage and the Retry-After read
there (``perpbot.ratelimit.hooks``), and the ``ExchangeCall`` event carries the headers as
the server spelled them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

UsageKind = Literal["weight", "orders"]
Usage = tuple[UsageKind, int, int]  # (kind, window_s, used)

WEIGHT_PREFIX = "x-mbx-used-weight-"
USAGE_PREFIXES = (WEIGHT_PREFIX, "x-mbx-order-count-")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def read_rate_headers(
    headers: Mapping[str, str],
) -> tuple[dict[str, str], list[Usage], float | None]:
    """A response's rate-limit headers (as the server spelled them), its usage counters
    and its ``Retry-After`` in seconds: each header is looked at once."""
    kept: dict[str, str] = {}
    usage: list[Usage] = []
    retry_after = None
    for name, value in headers.items():
        low = name.lower()
        if low.startswith(USAGE_PREFIXES):
            kept[name] = value
            counter = _usage(low, value)
            if counter is not None:
                usage.append(counter)
        elif low == "retry-after":
            kept[name] = value
            retry_after = _seconds(value)
    return kept, usage, retry_after


def usage_headers(headers: Mapping[str, str]) -> list[Usage]:
    """``(kind, window_s, used)`` for every usage header of a response."""
    return read_rate_headers(headers)[1]


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """The ``Retry-After`` of a response in seconds (delta-seconds form), if any."""
    return read_rate_headers(headers)[2]


def _usage(low_name: str, value: str) -> Usage | None:
    """``x-mbx-used-weight-1m: 12`` -> ("weight", 60, 12); a name or a count it cannot
    read -> None. (``low_name`` starts with one of ``USAGE_PREFIXES``; the window is what
    follows: a number of units, then the unit. String methods, not a regex: this runs on
    every response, and the regex engine was most of its cost.)"""
    window = low_name.rpartition("-")[2]
    count, unit = window[:-1], window[-1:]
    if not count.isdecimal() or unit not in _UNIT_S:
        return None
    try:
        used = int(value)
    except (TypeError, ValueError):
        try:  # a repeated header joined by ccxt ("12, 12")
            used = int(str(value).split(",")[0].strip())
        except ValueError:
            return None
    kind: UsageKind = "weight" if low_name.startswith(WEIGHT_PREFIX) else "orders"
    return kind, int(count) * _UNIT_S[unit], used


def _seconds(value: str) -> float | None:
    try:
        return max(0.0, float(str(value).strip()))
    except ValueError:
        return None
