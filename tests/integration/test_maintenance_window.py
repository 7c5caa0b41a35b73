"""An exchange maintenance window longer than the dead-man countdown, mid-run.

freqtrade #4491, #2889, #3221 and OctoBot #288: a maintenance window ended bots, and a
cancel-after timer left armed across it cancelled everything while the exchange was away.
Here the simulator opens a window (every REST answer "System is under maintenance.",
streams closed and refused) longer than `[kill] deadman_countdown_s`; the countdown lapses
inside it and the exchange cancels the resting orders. The run must say once that the
exchange is in maintenance, not end, learn on return that its orders are gone (no phantom
open orders), arm the countdown again before it places anything, and trade again. The
simulator's orders and countdown log are the truth.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    open_orders_of,
    orders_of,
    start_bot,
    wait_until,
)

COUNTDOWN_S = 2
WINDOW_MS = 5_000  # longer than the countdown: it lapses inside the window


def _last_tick(home: Path) -> dict[str, Any]:
    [ticks] = list((home / "runs").glob("*/ticks.jsonl"))
    lines = [json.loads(x) for x in ticks.read_text().splitlines() if x.strip()]
    return lines[-1]


@pytest.mark.parametrize("streams", [False, True], ids=["polling", "streams"])
def test_a_maintenance_window_longer_than_the_countdown(
    bot_files: MakeBotFiles,
    tmp_path: Path,
    bots: list[Bot],
    state_home: Path,
    streams: bool,
) -> None:
    sim, creds, toml = bot_files(
        params={"mode": "drip", "orders_per_symbol": 2},
        strategy={"symbols": ["BTC/USDT:USDT"], "tick_interval": 0.2},
        exchange={"streams": streams},
        # each request answered "under maintenance" fails: none of them counts as a failure
        kill={"deadman_countdown_s": COUNTDOWN_S, "max_consecutive_failures": 3},
        extra={"retry": {"max_attempts": 2, "base_delay_s": 0.05, "max_delay_s": 0.1}},
    )
    key = creds[0]
    bot = start_bot(toml, tmp_path, creds)
    bots.append(bot)
    wait_until(lambda: len(open_orders_of(sim.state(), key)) >= 4, timeout=30)

    window = sim.maintenance(ms=WINDOW_MS)
    resting = {o["orderId"] for o in open_orders_of(sim.state(), key)}
    wait_until(lambda: not sim.state()["maintenance"]["active"], timeout=WINDOW_MS / 1000 + 5)
    assert bot.proc.poll() is None, bot.err.read_text()[-2000:]  # the window did not end it
    state = sim.state()
    end_ms = window["until_ms"]
    log = [e for e in state["countdown_log"] if e["account"] == key]
    fired = [e for e in log if e["event"] == "fired"]
    assert fired and window["started_ms"] <= fired[0]["time"] < end_ms  # lapsed inside
    cancelled = {o["orderId"] for o in orders_of(state, key) if o["status"] == "CANCELED"}
    assert resting <= cancelled  # the exchange cancelled every resting order

    # it trades again after the window
    wait_until(lambda: len(open_orders_of(sim.state(), key)) >= 3, timeout=15)
    state = sim.state()
    new = sorted(o["time"] for o in orders_of(state, key) if o["time"] >= end_ms)
    rearmed = [
        e["time"] for e in state["countdown_log"] if e["account"] == key and e["time"] >= end_ms
    ]
    assert new and rearmed and min(rearmed) < new[0]  # armed again before the first order
    tick = _last_tick(state_home)
    open_now = len(open_orders_of(sim.state(), key))
    # the run's own view: the cancelled orders are cancelled, not open (no phantoms)
    assert tick["orders"]["cancelled"] >= len(resting), tick
    assert tick["orders"]["open"] <= open_now, (tick, open_now)

    bot.signal(signal.SIGTERM)
    code, out, err = bot.finish(30)
    both = out + err
    assert code == 0, both[-3000:]
    assert "Traceback" not in both and "engine error" not in both
    # one line (on the panel's log, and as a warning), not one per request or per tick
    for stream in (out, err):
        said = re.findall(r"[^\n]*the exchange is under maintenance[^\n]*", stream)
        assert len(said) == 1, said
    # ccxt's own text at most once: a strategy order met by the window's very first answer
    assert len(re.findall("System is under maintenance", both)) <= 1, both[-3000:]
    assert len(re.findall(r"EXCHANGE_MAINTENANCE_OVER: the exchange answers again", out)) == 1
    assert "KILL_DEADMAN_REARMED" in out  # the run said it armed the countdown again
    assert "KILL_FAILURES" not in out
    assert "<html" not in both.lower() and "signature=" not in both
