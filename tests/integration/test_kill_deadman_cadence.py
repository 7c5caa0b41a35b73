"""How often a live bot refreshes the exchange's dead-man countdown (the default cadence).

A healthy bot refreshes each symbol's countdown once half of it has passed since the
exchange last accepted it (weight 10 a call: a third would cost 50 % more) and tries a
refresh that failed again within a twentieth of the countdown. The simulator's own
countdown deadlines and open orders are the truth: sampled every 50 ms, the countdown never
lapses under the bot's open orders, and it is refreshed about every half countdown.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.integration.kill_strategies.support import (
    Bot,
    MakeBotFiles,
    account_of,
    now_ms,
    open_orders_of,
    start_bot,
    wait_until,
)

SYMBOLS = {"BTCUSDT", "ETHUSDT"}


def _bot(
    bot_files: MakeBotFiles, tmp_path: Path, countdown_s: float, bots: list[Bot]
) -> tuple[Any, tuple[str, str]]:
    sim, creds, toml = bot_files(
        params={"mode": "idle", "orders_per_symbol": 2},
        kill={"deadman_countdown_s": countdown_s},  # deadman_refresh_s: the default
    )
    bots.append(start_bot(toml, tmp_path, creds))
    wait_until(
        lambda: (
            len(open_orders_of(sim.state(), creds[0])) == 4
            and set(account_of(sim.state(), creds[0])["countdowns"]) == SYMBOLS
        ),
        timeout=60,
    )
    return sim, creds


def _watch(sim: Any, key: str, seconds: float) -> list[tuple[int, dict[str, int], int]]:
    """(now ms, countdown deadlines, open orders) every 50 ms for ``seconds``."""
    samples = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        state = sim.state()
        samples.append(
            (now_ms(), dict(account_of(state, key)["countdowns"]), len(open_orders_of(state, key)))
        )
        time.sleep(0.05)
    return samples


def _never_lapsed(samples: list[tuple[int, dict[str, int], int]]) -> None:
    for at, deadlines, orders in samples:
        assert orders == 4, (at, deadlines)  # the exchange cancelled nothing under the bot
        assert set(deadlines) == SYMBOLS, (at, deadlines)
        assert all(d > at for d in deadlines.values()), (at, deadlines)


def test_the_countdown_is_refreshed_every_half_countdown_and_never_lapses(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    countdown_ms = 4000
    sim, (key, _) = _bot(bot_files, tmp_path, countdown_ms / 1000, bots)
    samples = _watch(sim, key, 12.0)
    _never_lapsed(samples)
    start, end = samples[0][0], samples[-1][0]
    for symbol, sets in _refreshes(sim, key).items():
        # 12 s at one refresh per 2 s: about 6 (a third of the countdown would make 9)
        inside = [i for i, at in enumerate(sets) if start <= at <= end and i > 0]
        assert 4 <= len(inside) <= 7, (symbol, len(inside))
        for i in inside:
            # what was left when refreshed, on the exchange's clock: the deadline the last
            # refresh set, less the moment this one arrived (not when a sample saw it)
            left_ms = sets[i - 1] + countdown_ms - sets[i]
            # refreshed once half had passed (not earlier), with half of it still to spare
            assert left_ms <= countdown_ms / 2 + 300, (symbol, left_ms)
            assert left_ms >= countdown_ms / 4, (symbol, left_ms)


def _refreshes(sim: Any, key: str) -> dict[str, list[int]]:
    """Each symbol's countdown refreshes the simulator accepted (its countdown log), in order."""
    log = sim.state()["countdown_log"]
    return {
        symbol: [
            e["time"]
            for e in log
            if (e["account"], e["symbol"], e["event"]) == (key, symbol, "set")
        ]
        for symbol in SYMBOLS
    }


def test_a_refresh_that_fails_is_tried_again_before_the_countdown_lapses(
    bot_files: MakeBotFiles, tmp_path: Path, bots: list[Bot]
) -> None:
    sim, (key, _) = _bot(bot_files, tmp_path, 12.0, bots)
    first = dict(account_of(sim.state(), key)["countdowns"])
    wait_until(lambda: account_of(sim.state(), key)["countdowns"] != first, timeout=15)
    # every attempt of the next refresh (the retrier's five) is answered 503
    sim.set_faults(
        {
            "errors": {
                "rate": 1.0,
                "statuses": [503],
                "paths": ["/fapi/v1/countdownCancelAll"],
                "count": 10,
            }
        }
    )
    samples = _watch(sim, key, 14.0)
    sim.set_faults({})
    _never_lapsed(samples)
    refreshed = {
        d["BTCUSDT"] for _, d, _ in samples
    }  # the failed round was followed by a refresh the exchange accepted, in time
    assert len(refreshed) >= 2
