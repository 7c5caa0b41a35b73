"""What the hedge-mode tests share: a hedge-mode simulator account, a plain ccxt client on
it, and the simulator's own positions by side as the truth."""

from __future__ import annotations

from typing import Any

import ccxt
import pytest

from perpbot.client.loopback import configure_loopback
from perpbot.engine import OrderRejected
from perpbot.engine.context import Context
from tests.integration.risk_support.bot import BTC, Bot, quiet

LONG_QTY, SHORT_QTY = 0.01, 0.005


def plain_ccxt(sim: Any, key: str, secret: str) -> ccxt.binanceusdm:
    ex = ccxt.binanceusdm({"apiKey": key, "secret": secret, "enableRateLimit": False})
    configure_loopback(ex, sim.base_url)
    return ex


def account_of(sim: Any, key: str) -> dict[str, Any]:
    return next(a for a in sim.state()["accounts"] if a["api_key"] == key)


def sides(sim: Any, key: str, symbol_id: str = "BTCUSDT") -> dict[str, float]:
    """The account's positions by positionSide, as the simulator holds them."""
    acct = account_of(sim, key)
    return {
        p["positionSide"]: float(p["positionAmt"])
        for p in acct["positions"]
        if p["symbol"] == symbol_id
    }


@pytest.fixture
def hedge(sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str, str]:
    sim = sim_factory(market=quiet())
    key, secret = sim.create_account()
    plain_ccxt(sim, key, secret).fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    return sim, key, secret


async def rejected(bot: Bot, fn: Any) -> OrderRejected:
    with pytest.raises(OrderRejected) as info:
        await bot.do(fn)
    return info.value


def fresh(ctx: Context) -> Context:
    ctx.mid(BTC)
    return ctx
