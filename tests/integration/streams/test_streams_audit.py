"""On streams, fills and order changes reach the run without a request: the signed log must
still hold each one, once, whether the stream or the REST backfill delivered it (the
simulator's own trade list is the truth), and the chain must verify."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perpbot.audit.reader import iter_records
from perpbot.audit.verify import verify_segment
from perpbot.paths import logs_dir
from tests.integration.risk_support.bot import BTC, write_toml
from tests.integration.streams.support import (
    control,
    fill_events,
    sim_trade_ids,
    started,
)

pytestmark = pytest.mark.timeout(90)


async def test_every_fill_is_in_the_signed_log_across_a_disconnect(
    sim_factory: Any, tmp_path: Path, state_home: Path
) -> None:
    handle = sim_factory()
    toml = write_toml(
        tmp_path,
        handle.base_url,
        exchange={"stream_stale_s": 2.0},
        kill={"deadman": False},
        audit={"enabled": True},  # the other stream tests keep it off
    )
    bot = await started(toml)
    try:
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))
        await bot.until(lambda: len(fill_events(bot)) == 1)
        control(handle, "/__sim/faults", {"streams": {"refuse_connections": True}})
        control(handle, "/__sim/ws/close", {"code": 1006, "scope": "all"})
        await bot.until(lambda: bot.decisions("STREAM_DISCONNECTED"))
        await bot.do(lambda ctx: ctx.market_order(BTC, "buy", 0.002))  # fills while down
        control(handle, "/__sim/faults", {})
        await bot.until(lambda: bot.decisions("STREAM_BACKFILL"), timeout=30)
        await bot.do(lambda ctx: ctx.market_order(BTC, "sell", 0.002))
        truth = await sim_trade_ids(handle, bot)
        await bot.until(lambda: len(fill_events(bot)) >= len(truth))
    finally:
        await bot.stop()
    segment = logs_dir() / bot.runner.run_id
    result = verify_segment(segment, None)
    assert result.damage is None and result.closed and result.unsigned_tail == 0
    records = list(iter_records(segment))
    fills = [r for r in records if r["kind"] == "fill"]
    assert sorted(r["trade_id"] for r in fills) == sorted(truth)  # each once
    assert {r["source"] for r in fills} == {"stream", "rest"}  # the backfill is recorded too
    assert all(r["symbol"] == BTC and r["amount"] == 0.002 and r["price"] > 0 for r in fills)
    assert all("info" not in r for r in records)  # never the exchange's raw payload
    placed = {
        r["params"].get("clientOrderId")
        for r in records
        if r["kind"] == "exchange" and r["method"] == "create_order" and r["ok"]
    }
    assert {r["client_order_id"] for r in fills} <= placed  # each fill's order, requested
