"""A post-only order that would cross the book: a definite refusal, said as one.

hummingbot#4554 and #8469, passivbot#437: Binance's -5022 ("Due to the order could not be
executed as maker, the Post Only order will be rejected") shown as a network error and
retried or resent. Here the strategy gets an OrderRejected with a named code and a sentence
naming -5022 and post-only, the run logs the rejection (no RETRY_* decision), and the
simulator served exactly one order request for it and recorded no order (what Binance does).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from perpbot.engine.strategy import OrderRejected
from tests.integration.risk_support.bot import BTC, Bot, write_toml


def _order_posts(sim: Any) -> int:
    served = Counter(sim.state()["counters"]["per_path"])
    return sum(n for path, n in served.items() if path.endswith("/fapi/v1/order"))


async def test_a_crossing_post_only_is_rejected_once_named_and_never_resent(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, _key = account
    toml = write_toml(tmp_path, sim.base_url, kill={"deadman": False})
    async with Bot(toml) as bot:
        ask = await bot.do(lambda ctx: ctx.order_book(BTC, 5)["asks"][0][0])
        before = _order_posts(sim)
        with pytest.raises(OrderRejected) as info:
            await bot.do(lambda ctx: ctx.post_only_order(BTC, "buy", 0.002, ask))
        rejected = info.value
        assert rejected.code == "EXCHANGE_POST_ONLY_REJECTED"
        assert "-5022" in rejected.sentence and "post-only" in rejected.sentence
        assert "not sent again" in rejected.sentence
        # the strategy's own event: the order rejected, with the same code and sentence
        update = await bot.until(
            lambda: next(
                (u for u in bot.strategy.updates if u.status == "rejected"),  # type: ignore[attr-defined]
                None,
            )
        )
        assert (update.code, update.sentence) == (rejected.code, rejected.sentence)
        assert f"post-only buy 0.002 {BTC} at {ask:g} ({update.client_order_id})" in (
            rejected.sentence
        )
        # the run's log: the rejection decision, no retry of any kind
        logged = [e for e in bot.journal() if e.get("code") == "EXCHANGE_POST_ONLY_REJECTED"]
        assert len(logged) == 1 and logged[0]["action"] == "reject"
        assert "-5022" in logged[0]["sentence"]
        assert not [e for e in bot.journal() if str(e.get("code", "")).startswith("RETRY_")]
        assert "EXCHANGE_POST_ONLY_REJECTED" in bot.out.getvalue()
        assert "network" not in bot.out.getvalue().lower()
        # the exchange: one order request, no order recorded (Binance does not record it)
        assert _order_posts(sim) - before == 1
        orders = [o for o in sim.state()["orders"] if o["clientOrderId"] == rejected_cid(bot)]
        assert len(orders) == 1 and orders[0]["recorded"] is False
        assert orders[0]["status"] == "EXPIRED"
        assert await bot.do(lambda ctx: ctx.open_orders(BTC)) == []


def rejected_cid(bot: Bot) -> str:
    (cid,) = {
        u.client_order_id
        for u in bot.strategy.updates  # type: ignore[attr-defined]
        if u.status == "rejected"
    }
    return cid
