"""The chaos campaign's grant episodes: a key profile narrower than what the strategy tries.

The bot runs bench/support/overreach.py under a key profile (a test file keyring, see
tests/keys_support/backends.py) whose grant is: ``run`` may ``read,trade,cancel`` (no
``leverage``, no ``stop``) on the strategy's own symbol only, with ``--max-notional``;
``kill`` may ``read,cancel,reduce``. The strategy tries, one per tick, to set leverage and
margin mode, order another symbol, order over the notional cap (limit and market) and place a
stop. The invariant reads the simulator's own record (``/__sim/state``): no request to a
settings or algo endpoint arrived at all, and every order the account ever sent (accepted,
or a recorded post-only rejection) is on a granted symbol and, unless reduce-only, within
the notional cap.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

GRANT_PROFILE = "chaos"
GRANT_SYMBOL = "BTC/USDT:USDT"
GRANT_SYMBOL_ID = "BTCUSDT"
OUTSIDE_SYMBOL = "ETH/USDT:USDT"
MAX_NOTIONAL = 500.0
# endpoints the grant never reaches: leverage/margin mode (scope leverage), algo orders (stop)
FORBIDDEN_PATHS = ("/fapi/v1/leverage", "/fapi/v1/marginType", "/fapi/v1/algoOrder")
STRATEGY = Path(__file__).resolve().parent / "overreach.py"
ROOT = Path(__file__).resolve().parents[2]


def keyring_env(where: Path) -> dict[str, str]:
    """Environment for subprocesses that keep their profiles in a file keyring in ``where``."""
    pythonpath = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "PYTHON_KEYRING_BACKEND": "tests.keys_support.backends.FileKeyring",
        "PYTHONPATH": pythonpath,
        "PERPBOT_TEST_KEYRING_FILE": str(where / "keyring.json"),
    }


def add_profile(cli: Callable[..., Any], env: dict[str, str], creds: tuple[str, str]) -> str:
    """Store the account's key as profile ``chaos`` with the narrow grant; '' or what failed."""
    steps: list[tuple[tuple[str, ...], str | None]] = [
        (("keys", "add", GRANT_PROFILE, "--exchange", "sim", "--stdin"), "\n".join(creds) + "\n"),
        (("keys", "scope", GRANT_PROFILE, "--command", "run", "--allow", "read,trade,cancel",
          "--symbols", GRANT_SYMBOL, "--max-notional", f"{MAX_NOTIONAL:g}", "--yes"), None),
        (("keys", "scope", GRANT_PROFILE, "--command", "kill", "--allow", "read,cancel,reduce",
          "--yes"), None),
    ]  # fmt: skip
    for args, stdin in steps:
        r = cli(env, *args, stdin=stdin)
        if r.returncode != 0:
            return f"perpbot {' '.join(args[:3])} exited {r.returncode}: {r.stderr[-300:]}"
    return ""


def outside_grant(state: dict[str, Any], key: str) -> list[str]:
    """What reached the simulator outside the grant, from its own record."""
    found: list[str] = []
    per_path = state["counters"]["per_path"]
    for path in FORBIDDEN_PATHS:
        if per_path.get(path):
            found.append(f"{per_path[path]} request(s) to {path} reached the exchange")
    marks = {s: float(m["mark"]) for s, m in state["markets"].items()}
    for o in state["orders"]:
        if o["account"] != key:
            continue
        cid = o["clientOrderId"]
        if o["symbol"] != GRANT_SYMBOL_ID:
            found.append(f"order {cid} on {o['symbol']}, outside the grant's symbols")
            continue
        price = float(o["price"]) or marks.get(o["symbol"], 0.0)
        notional = float(o["origQty"]) * price
        if not o["reduceOnly"] and notional > MAX_NOTIONAL:
            found.append(f"order {cid} of notional {notional:.0f} over {MAX_NOTIONAL:g}")
    return found
