"""A refused stream handshake is fed back into the shared connection budget: once one bot
is refused (HTTP 429 with Retry-After, the simulator's refusal window), every bot on the IP
waits for the Retry-After instead of dialling into the refusal. The simulator's own count
of refused handshakes is the truth; `perpbot status` shows the connection bucket."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from perpbot.cli.status import bot_view
from perpbot.cli.status_view import budget_line
from tests.integration.risk_support.bot import BTC, write_toml
from tests.integration.streams.support import control, fill_events, started, ws_counters

pytestmark = pytest.mark.timeout(90)

REFUSE_MS = 3000
CONNECTION_WINDOW_S = 300  # [limits] ws_connection_window_s: its fixed windows' length


def _window(t: float) -> int:
    """The fixed connection-budget window ``t`` (epoch s) falls in."""
    return int(t // CONNECTION_WINDOW_S)


@pytest.mark.parametrize("status", [429, 418, 503])
async def test_a_refused_handshake_holds_every_bots_next_dial(
    sim_factory: Any, tmp_path: Path, state_home: Path, status: int
) -> None:
    """A 429 (the exchange's connection count) also cuts the budget, and a 418 (the IP
    banned for dialling on) like a 429; a 503 only holds."""
    handle = sim_factory()
    bots: list[Any] = []
    try:
        for i in range(2):
            home = tmp_path / f"bot{i}"
            home.mkdir()
            toml = write_toml(
                home,
                handle.base_url,
                exchange={"stream_stale_s": 30.0, "reconcile_interval": 600},
                kill={"deadman": False},
            )
            bots.append(await started(toml))
        first, second = bots
        before = ws_counters(handle)["refused"]
        control(handle, "/__sim/ws/refuse", {"ms": REFUSE_MS, "status": status})
        window_end = time.monotonic() + REFUSE_MS / 1000.0
        # the first bot's user stream redials into the refusal window: refused once
        await first.runner.feed._drop(private=True)
        (refused,) = await first.until(lambda: first.decisions("RATE_CONNECTION_REFUSED"))
        assert refused.data["status"] == status
        assert refused.data["retry_after"] == REFUSE_MS / 1000
        if status in (429, 418):  # the exchange's count is fuller than ours: cut
            assert refused.data["new"] < refused.data["old"]
        else:
            assert refused.data["new"] == refused.data["old"]
        assert "every bot on this IP" in refused.sentence
        # the second bot loses its user stream after that: it waits, it does not dial
        await second.runner.feed._drop(private=True)
        dialled_in = _window(time.time())  # the redials come after this
        waits = await second.until(
            lambda: [
                d
                for d in second.decisions("RATE_WAIT_CONNECTIONS")
                if d.data["reason"] == "retry_after"
            ]
        )
        assert "Retry-After" in waits[0].sentence
        for bot in bots:  # both come back once the window is over, and backfill
            await bot.until(lambda bot=bot: bot.decisions("STREAM_BACKFILL"), timeout=30)
        assert time.monotonic() >= window_end - 0.2
        refused_total = ws_counters(handle)["refused"] - before
        # `perpbot status` shows the connection bucket, cut, beside the weight
        view = bot_view(first.status(), time.time(), None)
        line = budget_line(view)
        conn = view["rate"]["connections"]
        assert (conn["factor"] < 1.0) == (status != 503)
        if _window(time.time()) == dialled_in:  # (a new 5 min window counts none of them yet)
            assert conn["used"] >= 1
        assert f"connections {conn['used']}/{conn['limit']} per 5m" in line
        # and the user streams carry fills again
        await second.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await second.until(lambda: fill_events(second))
    finally:
        control(handle, "/__sim/ws/refuse", {"ms": 0})
        for bot in bots:
            await bot.stop()
    assert refused_total == 1  # the simulator's truth: only the first dial was refused
    assert not second.decisions("RATE_CONNECTION_REFUSED")


RECOVER_S = 2.0  # [limits] recover_after_s: longer than the refusal's hold (1 s)


def connections(bot: Any) -> dict[str, Any]:
    """The connections bucket as `perpbot status` shows it."""
    return dict(bot_view(bot.status(), time.time(), None)["rate"]["connections"])


async def test_a_cut_connection_budget_grows_back_once_calm(
    sim_factory: Any, tmp_path: Path
) -> None:
    handle = sim_factory()
    toml = write_toml(
        tmp_path,
        handle.base_url,
        exchange={"stream_stale_s": 30.0, "reconcile_interval": 600},
        kill={"deadman": False},
        limits={"recover_after_s": RECOVER_S, "recover_step": 0.5},
    )
    bot = await started(toml)
    try:
        control(handle, "/__sim/ws/refuse", {"ms": 1000, "status": 429})
        await bot.runner.feed._drop(private=True)
        (cut,) = await bot.until(lambda: bot.decisions("RATE_CONNECTION_REFUSED"))
        refused_at = time.monotonic()
        assert cut.data["new"] < cut.data["old"]
        await bot.until(lambda: bot.decisions("STREAM_BACKFILL"), timeout=30)  # redialled
        # the status file is written on the run's status cadence: wait for it to show the cut
        cut_view = await bot.until(lambda: connections(bot)["factor"] == 0.5 and connections(bot))
        assert cut_view["limit"] == cut.data["new"]
        assert not bot.decisions("RATE_RECOVER")
        # calm for recover_after_s: the next dial grows the budget back (by 0.5: whole)
        await asyncio.sleep(max(0.0, refused_at + RECOVER_S - time.monotonic()))
        # (the user stream's four watchers may come back in one backfill or in several)
        backfills = len(bot.decisions("STREAM_BACKFILL"))
        await bot.runner.feed._drop(private=True)
        (grown,) = await bot.until(lambda: bot.decisions("RATE_RECOVER"))
        assert grown.data["bucket"] == "connections/300s"
        assert (grown.data["old"], grown.data["new"]) == (cut.data["new"], cut.data["old"])
        assert f"new-connection budget raised {cut.data['new']} -> {cut.data['old']}" in (
            grown.sentence
        )
        grown_view = await bot.until(lambda: connections(bot)["factor"] == 1.0 and connections(bot))
        assert grown_view["limit"] == cut.data["old"]
        await bot.until(lambda: len(bot.decisions("STREAM_BACKFILL")) > backfills, timeout=30)
        assert ws_counters(handle)["refused"] == 1  # the simulator's truth: one refusal
    finally:
        control(handle, "/__sim/ws/refuse", {"ms": 0})
        await bot.stop()
