"""Client order ids: deterministic, so a resend after a lost response is recognisable.

An id is derived from (run, strategy, intent sequence): the same intent always maps to the
same id, which is what lets the retry layer look an order up by ``origClientOrderId`` before
anything is resent, and lets the exchange reject a true duplicate (-4116).
Binance allows ``^[.A-Z:/a-z0-9_-]{1,36}$``.
"""

from __future__ import annotations

import hashlib

PREFIX = "pb"


def run_tag(run_id: str, strategy: str) -> str:
    """10 characters that identify (run, strategy)."""
    return hashlib.sha256(f"{run_id}\x00{strategy}".encode()).hexdigest()[:10]


def client_order_id(run_id: str, strategy: str, sequence: int) -> str:
    if sequence < 0:
        raise ValueError("sequence must be >= 0")
    return f"{PREFIX}-{run_tag(run_id, strategy)}-{sequence}"


def is_ours(client_id: str | None, run_id: str, strategy: str) -> bool:
    return bool(client_id) and client_id.startswith(f"{PREFIX}-{run_tag(run_id, strategy)}-")
