"""Scope bypass attempts over real HTTP against the simulator: every one is denied by the
ScopeGate before a request reaches the simulator (its request counter does not move)."""

from __future__ import annotations

from typing import Any

import pytest

from perpbot.client.request import OrderSpec
from perpbot.keys.audit import audit_key
from perpbot.keys.store import load_profile
from tests.keys_support.scope_session import BTC, ETH, Session, denied, session

__all__ = ["session"]  # the fixture the tests below ask for

pytestmark = pytest.mark.usefixtures("memory_keyring")  # stored profiles, in memory


def spec(side: str, amount: float, symbol: str = BTC, **kw: Any) -> OrderSpec:
    return OrderSpec(symbol=symbol, side=side, type="market", amount=amount, **kw)  # type: ignore[arg-type]


async def test_unmapped_ccxt_methods_are_denied(session: Session) -> None:
    client = (await session.connect("main")).client
    err = await denied(session, client.call("withdraw", "USDT", 10, "addr"))
    assert err.code == "SCOPE_UNMAPPED_METHOD"
    transfer = client.call("sapi_post_asset_transfer", {"type": "UMFUTURE_MAIN", "amount": 1})
    assert (await denied(session, transfer)).code == "SCOPE_UNMAPPED_METHOD"
    # raw ccxt endpoints not in the table are denied too, even harmless-looking ones
    raw = client.call("fapiprivate_get_account")
    assert (await denied(session, raw)).code == "SCOPE_UNMAPPED_METHOD"


async def test_reduce_only_profile_cannot_grow_a_position(session: Session) -> None:
    trader = (await session.connect("trader")).client
    await trader.create_order(spec("buy", 0.01))
    assert session.position() == pytest.approx(0.01)
    reduce_grant = {"run": {"read", "reduce", "cancel"}}
    conn = await session.connect("unwind", commands=reduce_grant)
    client = conn.client
    # the account has not been read yet: the gate cannot know the position, so it refuses
    err = await denied(session, client.create_order(spec("sell", 0.01, reduce_only=True)))
    assert err.code == "SCOPE_POSITION_UNKNOWN"
    await conn.setup.account.refresh(client, [BTC])
    for attempt, code in [
        (spec("buy", 0.01, reduce_only=True), "SCOPE_REDUCE_EXCEEDS"),  # grows the long
        (spec("sell", 0.02, reduce_only=True), "SCOPE_REDUCE_EXCEEDS"),  # flips to short
        (spec("sell", 0.01), "SCOPE_REDUCE_ONLY"),  # not flagged reduce-only
        (spec("buy", 0.01, symbol=ETH, reduce_only=True), "SCOPE_REDUCE_EXCEEDS"),  # no ETH pos
    ]:
        err = await denied(session, client.create_order(attempt))
        assert err.code == code
        assert "perpbot keys scope unwind --command run --allow trade" in err.message
    raw = client.call("create_order", BTC, "market", "buy", 0.01, None, params={})
    assert (await denied(session, raw)).code == "SCOPE_REDUCE_ONLY"
    assert session.position() == pytest.approx(0.01)
    await client.create_order(spec("sell", 0.01, reduce_only=True))  # a true reduction passes
    assert session.position() == 0.0


async def test_symbol_limited_profile_cannot_trade_another_symbol(session: Session) -> None:
    client = (await session.connect("btc-only", symbols=(BTC,))).client
    err = await denied(session, client.create_order(spec("buy", 0.1, symbol=ETH)))
    assert err.code == "SCOPE_SYMBOL" and f"--symbols {BTC},{ETH}" in err.message
    err = await denied(session, client.set_leverage(2, ETH))
    assert err.code == "SCOPE_SYMBOL"
    raw = client.call("create_order", "ETHUSDT", "market", "buy", 0.1, None)
    assert (await denied(session, raw)).code == "SCOPE_SYMBOL"
    await client.fetch_ticker(ETH)  # reading another market is not trading it


async def test_leverage_above_the_limit_is_denied(session: Session) -> None:
    client = (await session.connect("lev", max_leverage=5.0)).client
    err = await denied(session, client.set_leverage(20, BTC))
    assert err.code == "SCOPE_MAX_LEVERAGE" and "--max-leverage 20" in err.message
    await client.set_leverage(5, BTC)
    assert int(session.account()["leverage"]["BTCUSDT"]) == 5


async def test_scope_missing_for_the_command(session: Session) -> None:
    conn = await session.connect("reader", command="status", commands={"status": {"read"}})
    err = await denied(session, conn.client.cancel_all_orders(BTC))
    assert err.code == "SCOPE_MISSING"
    assert "perpbot keys scope reader --command status --allow cancel" in err.message


async def test_audit_through_the_pipeline(session: Session) -> None:
    audit_grant = {"keys audit": {"read"}, "run": {"read", "trade", "cancel"}}
    conn = await session.connect("auditor", command="keys audit", commands=audit_grant)
    grant = load_profile("auditor").grant
    report = await audit_key(
        conn.client, grant, profile="auditor", exchange="sim", masked_key="****"
    )
    assert report.ok, report.findings
    assert report.permissions["enableFutures"] is True
    key, secret = session.sim.create_account(permissions={"enableWithdrawals": True})
    session.key, session.secret = key, secret
    conn = await session.connect("leaky", command="keys audit", commands=audit_grant)
    report = await audit_key(conn.client, grant, profile="leaky", exchange="sim", masked_key="*")
    assert not report.ok
    assert [f.code for f in report.failures] == ["SCOPE_AUDIT_WITHDRAW"]
