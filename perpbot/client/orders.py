"""Client order ids: deterministic, so a resend after a lost response is recognisable.

An id is ``pb-<strategy tag>-<run tag>-<sequence>``:

- the *strategy tag* (6 hex) depends on the strategy's name only: it is the same in every
  run, so a bot started again finds the orders an earlier run of its strategy left on the
  account (perpbot.kill.sweep);
- the *run tag* (6 hex) depends on (run, strategy): this run's own orders;
- the same intent always maps to the same id, which is what lets the retry layer look an
  order up by ``origClientOrderId`` before anything is resent, and lets the exchange reject
  a true duplicate (-4116).

Binance allows ``^[.A-Z:/a-z0-9_-]{1,36}$``: 3 + 7 + 7 + up to 19 digits.
"""

from __future__ import annotations

import hashlib
import re

PREFIX = "pb"
_PERPBOT_ID = re.compile(r"^pb-([0-9a-f]{6})-([0-9a-f]{6})-\d+$")


def _tag(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:6]


def strategy_tag(strategy: str) -> str:
    """6 characters that identify a strategy (by name) across its runs."""
    return _tag(f"strategy\x00{strategy}")


def run_tag(run_id: str, strategy: str) -> str:
    """6 characters that identify (run, strategy)."""
    return _tag(f"{run_id}\x00{strategy}")


def strategy_prefix(strategy: str) -> str:
    """What every client id of every run of ``strategy`` starts with."""
    return f"{PREFIX}-{strategy_tag(strategy)}-"


def run_prefix(run_id: str, strategy: str) -> str:
    """What every client id of this run starts with."""
    return f"{strategy_prefix(strategy)}{run_tag(run_id, strategy)}-"


def client_order_id(run_id: str, strategy: str, sequence: int) -> str:
    if sequence < 0:
        raise ValueError("sequence must be >= 0")
    return f"{run_prefix(run_id, strategy)}{sequence}"


def is_ours(client_id: str | None, run_id: str, strategy: str) -> bool:
    return bool(client_id) and str(client_id).startswith(run_prefix(run_id, strategy))


def perpbot_strategy_tag(client_id: str | None) -> str | None:
    """The strategy tag of a client id a perpbot run placed, else None (a manual order,
    another program's, a kill's ``pbk-`` order)."""
    m = _PERPBOT_ID.match(str(client_id or ""))
    return m.group(1) if m else None
