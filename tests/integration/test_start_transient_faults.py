"""A transient fault on a run's first requests must not kill the start.

Every other start-fault test holds its fault for the whole start and expects a refusal. Here
the simulator's fault plan is installed before ``perpbot run`` starts and fires once (a
count), on one of the requests a start makes before it trades: the markets
(``load_markets``: exchangeInfo), the balance (v3/account), the positions (v3/positionRisk)
and the start's sweep of open orders (openOrders). The run must start, lay its orders at the
simulator, and stop cleanly (exit 0) with nothing left open. The simulator's own state (its
fault counters, orders and countdowns) is the truth.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    account_of,
    open_orders_of,
    orders_of,
    start_bot,
    wait_until,
)

TIMEOUT_MS = 1500  # [exchange] timeout_ms: an answer held longer is a RequestTimeout
ORDERS = 3
EARLY = {  # what the start asks first, by the path the simulator sees
    "markets": "/fapi/v1/exchangeInfo",
    "sweep": "/fapi/v1/openOrders",
    "balance": "/fapi/v3/account",
    "positions": "/fapi/v3/positionRisk",
    "deadman": "/fapi/v1/countdownCancelAll",  # the kill switch arms: a POST
    "first_order": "/fapi/v1/order",  # the run's first placement: a POST
}
SQUARE = ("markets", "sweep", "balance", "positions")  # the reads every start makes first


@dataclass(frozen=True)
class Kind:
    """One kind of transient fault, as the simulator's fault plan sets it."""

    entry: str  # the fault plan's entry
    fields: dict[str, Any]  # its settings (the path is added per test)
    counter: str  # the simulator's counter it bumps
    fires: int  # times it fires
    error: str | None  # what perpbot's retry names (None: the HTTP client resends it)


KINDS = {
    # the answer held past the client's timeout: ccxt RequestTimeout
    "timeout": Kind(
        "delayed_response",
        {"count": 1, "methods": [], "delay_ms": TIMEOUT_MS * 2},
        "delayed_responses",
        1,
        "RequestTimeout",
    ),
    "http_503": Kind(
        "errors", {"count": 1, "statuses": [503]}, "injected_errors", 1, "ExchangeNotAvailable"
    ),
    # a connection closed without an answer; aiohttp resends an idempotent request once by
    # itself, so it is dropped twice for perpbot to meet the ConnectionError
    "connection_drop": Kind("drop", {"count": 2}, "dropped", 2, "ExchangeNotAvailable"),
    # processed, then the connection closed instead of the answer (on a read aiohttp's own
    # resend gets it; a write reaches perpbot's retrier or, for a create, its lookup)
    "lost_response": Kind("lost_response", {"count": 1, "methods": []}, "lost_responses", 1, None),
}


def _plan(faults: dict[str, str]) -> dict[str, Any]:
    """{kind: early request} -> the simulator's fault plan (each fires on its path only)."""
    return {
        KINDS[kind].entry: {"rate": 1.0, "paths": [EARLY[early]], **KINDS[kind].fields}
        for kind, early in faults.items()
    }


def _start_through(
    faults: dict[str, str], bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "idle", "orders_per_symbol": ORDERS},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.2},
        exchange={"timeout_ms": TIMEOUT_MS},
    )
    key = creds[0]
    sim.set_faults(_plan(faults))  # before the start: its first requests meet them
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    try:
        wait_until(
            lambda: len(open_orders_of(sim.state(), key)) == ORDERS or bot.proc.poll() is not None,
            timeout=30,
        )
    finally:
        bot.signal(signal.SIGTERM)
    code, out, err = bot.finish(30)

    assert code == 0, f"the start did not survive {faults}:\n{err}"
    assert "Traceback" not in err and "refusing to start" not in err
    state = sim.state()
    counters = state["counters"]
    for kind in faults:  # each fault did fire, on its early request
        assert counters[KINDS[kind].counter] == KINDS[kind].fires, (kind, counters)
    placed = orders_of(state, key)  # the run traded: its orders reached the exchange ...
    assert len(placed) == ORDERS and all(o["clientOrderId"].startswith("pb-") for o in placed)
    assert not open_orders_of(state, key)  # ... and its clean stop cancelled them
    assert all(o["status"] == "CANCELED" for o in placed)
    assert not account_of(state, key)["countdowns"]  # armed at the start, disarmed at the stop
    assert f"orders: placed {ORDERS}," in out
    for kind in faults:  # perpbot's own retry said what it met
        error = KINDS[kind].error
        if error is not None:
            assert "RETRY_TRANSIENT" in out and f"after {error}" in out, out


def _latin_row(shift: int) -> dict[str, str]:
    """Each fault kind on a different early request; rows 0-3 pair every kind with every
    request once (row 0 is the single-fault test's pairs)."""
    kinds = list(KINDS)
    return {kinds[(i + shift) % len(kinds)]: early for i, early in enumerate(SQUARE)}


@pytest.mark.parametrize(
    ("kind", "early"),
    [
        *_latin_row(0).items(),  # timeout: markets, 503: sweep, drop: balance, lost: positions
        ("lost_response", "deadman"),  # setting the countdown again is safe: retried
        ("lost_response", "first_order"),  # looked up by client id: placed once, not twice
    ],
)
def test_one_transient_fault_on_a_first_request_does_not_stop_the_start(
    kind: str, early: str, bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    """passivbot #570 (one RequestTimeout at start-up killed the bot) and jesse #378 (one
    ConnectionError at start-up did): ONE transient fault on one of the start's first
    requests (markets, sweep, balance, positions, arming the dead-man countdown, the first
    placement) is retried or resolved; the run starts, trades (exactly its orders, none
    twice) and exits 0."""
    _start_through({kind: early}, bot_files, tmp_path, bots)


@pytest.mark.parametrize("shift", [1, 2, 3])
def test_each_first_request_meeting_a_different_transient_fault_still_starts(
    shift: int, bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    """passivbot #570 / jesse #378, on a bad minute: the markets, the sweep, the balance
    and the positions each meet one transient fault of a different kind in the same start
    (timeout, 503, dropped connection, lost answer; the three rows with the single-fault
    test cover every kind on every request); the run still starts, trades and exits 0."""
    _start_through(_latin_row(shift), bot_files, tmp_path, bots)
