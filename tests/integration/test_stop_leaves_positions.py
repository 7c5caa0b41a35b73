"""A clean stop cancels the run's orders and leaves its positions (docs/kill.md): it must say
so, and a `[protect]` stop must still stand on the exchange afterwards.

A real ``perpbot run`` subprocess opens a position, lays resting orders and (with
`[protect]`) gets its exchange-side stop; then it stops cleanly. The simulator's state is
the truth.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.hedge_support import plain_ccxt, sides
from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    account_of,
    open_orders_of,
    position_of,
    start_bot,
    wait_until,
)
from tests.integration.protect.test_protect_sigkill import algo_orders_of, standing_stop

BTC, BTC_ID = "BTC/USDT:USDT", "BTCUSDT"
PROTECT = {"protect": {"enabled": True, "stop_pct": 2.0, "check_interval_s": 0.2}}
DURATION_S = 4.0
RESTING = 2  # resting orders the bot lays


def _standing(sim: Any, key: str) -> dict[str, dict[str, Any]]:
    """The account's waiting algo orders by client id."""
    return {a["clientAlgoId"]: a for a in algo_orders_of(sim, key) if a["algoStatus"] == "NEW"}


def _said_once(err: str, home: Path) -> str:
    """The one stderr line naming the positions left open; summary.json's warnings too."""
    said = [line for line in err.splitlines() if "positions left open" in line]
    assert len(said) == 1, err
    assert "not its positions" in said[0]
    (summary,) = [json.loads(p.read_text()) for p in home.glob("runs/*/summary.json")]
    assert said[0].removeprefix("perpbot: warning: ") in summary["warnings"]
    return said[0]


@pytest.mark.parametrize(
    ("ending", "protect", "streams"),
    [
        ("SIGTERM", True, True),
        ("SIGTERM", True, False),
        ("--duration", True, True),
        ("SIGTERM", False, True),
    ],
)
def test_a_clean_stop_names_the_position_it_leaves_and_its_stop_still_stands(
    bot_files: MakeBotFiles,
    tmp_path: Path,
    state_home: Path,
    bots: list[Bot],
    ending: str,
    protect: bool,
    streams: bool,
) -> None:
    """freqtrade #907: shutdown cancelled the orders but left the positions open, silently.
    By design a clean stop (SIGTERM, end of --duration) leaves positions; the run says which
    (stderr and summary.json's warnings), names the conditional orders of this run still
    standing on each, and the `[protect]` stop is still standing at the exchange while the
    resting orders are gone. Without `[protect]` the line says nothing protects it."""
    sim, creds, toml = bot_files(
        params={"mode": "idle", "orders_per_symbol": RESTING, "open_position": 0.01},
        strategy={"symbols": [BTC], "tick_interval": 0.2},
        exchange={"streams": streams},
        extra=PROTECT if protect else {},
    )
    key = creds[0]
    args = ("--duration", str(DURATION_S)) if ending == "--duration" else ()
    bot = start_bot(toml, tmp_path, creds, *args)
    bots.append(bot)
    wait_until(
        lambda: (
            len(open_orders_of(sim.state(), key)) == RESTING
            and (standing_stop(sim, key) is not None or not protect)
        ),
        timeout=30,
    )
    stop = standing_stop(sim, key)
    if ending == "SIGTERM":
        bot.signal(signal.SIGTERM)
    code, out, err = bot.finish(30)

    assert code == 0, err
    assert "Traceback" not in err
    state = sim.state()
    assert not open_orders_of(state, key)  # the resting orders are cancelled ...
    assert position_of(state, key, BTC_ID) == 0.01  # ... the position is left
    assert not account_of(state, key)["countdowns"]  # a clean stop: disarmed
    said = _said_once(err, state_home)
    assert f"{BTC} +0.01" in said
    assert f"final position {BTC}: +0.01" in out
    if protect:
        assert stop is not None and stop["closePosition"] is True
        after = standing_stop(sim, key)  # the very same stop still stands
        assert after is not None and after["algoId"] == stop["algoId"]
        assert f"stand on it: {stop['clientAlgoId']}" in said, said
    else:
        assert not algo_orders_of(sim, key)
        assert "no conditional order of this run stands on it" in said


def test_a_clean_stop_of_a_hedge_bot_names_each_side_it_leaves_with_that_sides_stop(
    bot_files: MakeBotFiles, tmp_path: Path, state_home: Path, bots: list[Bot]
) -> None:
    """freqtrade #907 on a hedge-mode account: the stop leaves both sides open and names
    each (LONG +0.01, SHORT -0.005) with its own `[protect]` stop, both still standing."""
    sim, creds, toml = bot_files(
        params={"mode": "idle", "orders_per_symbol": 0, "open_position": 0.01,
                "open_short": 0.005},
        strategy={"symbols": [BTC], "tick_interval": 0.2},
        extra=PROTECT,
    )  # fmt: skip
    key, secret = creds
    plain_ccxt(sim, key, secret).fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    stops = wait_until(lambda: len(s := _standing(sim, key)) == 2 and s, timeout=30)
    bot.signal(signal.SIGTERM)
    code, _out, err = bot.finish(30)

    assert code == 0, err
    assert sides(sim, key) == {"LONG": 0.01, "SHORT": -0.005}
    assert _standing(sim, key).keys() == stops.keys()  # both stops still stand
    said = _said_once(err, state_home)
    for cid, stop in stops.items():
        amount = "+0.01" if stop["positionSide"] == "LONG" else "-0.005"
        named = f"{BTC} {stop['positionSide']} {amount} (this run's conditional orders"
        assert f"{named} stand on it: {cid})" in said, said
