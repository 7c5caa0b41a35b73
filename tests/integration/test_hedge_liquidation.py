"""``[risk] liquidation_band_pct`` on a hedge-mode (cross margin) account.

Over real HTTP against the simulator, whose own state (GET /__sim/state) is the truth: a
LONG and a SHORT of one symbol move with the same mark and the account liquidates both at
once, so perpbot's estimate is one price for both sides (Binance's hedge-mode formula). The
status file shows it per side, the risk gate refuses before any request an order that would
bring it inside the band, and the simulator liquidates where the estimate says: not just
above it, and just below it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from perpbot.engine import OrderRejected
from tests.integration.hedge_support import account_of, fresh, plain_ccxt, sides
from tests.integration.risk_support.bot import BTC, Bot, quiet, write_toml

LONG, SHORT, MORE = 0.2, 0.05, 0.05
BAND = 8.0  # %: SHORT then LONG leave ~10 % to liquidation; MORE long leaves ~7.8 %


@pytest.fixture
def hedged(sim_factory: Any, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, str]:
    sim = sim_factory(market=quiet())
    key, secret = sim.create_account(balance=1000)
    plain_ccxt(sim, key, secret).fapiPrivatePostPositionSideDual({"dualSidePosition": "true"})
    monkeypatch.setenv("PERPBOT_SIM_API_KEY", key)
    monkeypatch.setenv("PERPBOT_SIM_API_SECRET", secret)
    return sim, key


def mark(sim: Any) -> float:
    return float(sim.state()["markets"]["BTCUSDT"]["mark"])


def move_mark_to(sim: Any, target: float) -> None:
    sim.jump("BTCUSDT", (target / mark(sim) - 1.0) * 100.0)


@pytest.mark.parametrize("streams", [False, True], ids=["REST reconcile", "user stream"])
async def test_the_liquidation_estimate_is_per_side_gated_and_where_the_simulator_liquidates(
    hedged: tuple[Any, str], tmp_path: Path, streams: bool
) -> None:
    sim, key = hedged
    toml = write_toml(
        tmp_path,
        sim.base_url,
        risk={"liquidation_band_pct": BAND, "accept_no_limits": True},
        exchange={"streams": streams, "reconcile_interval": 1},
    )
    async with Bot(toml) as bot:
        await bot.do(lambda ctx: fresh(ctx).market_order(BTC, "sell", SHORT, position_side="SHORT"))
        await bot.do(lambda ctx: ctx.refresh())  # on streams: once the SHORT has arrived
        # judged with the SHORT beside it (alone, the LONG would be ~7.9 % away: refused)
        await bot.do(lambda ctx: fresh(ctx).market_order(BTC, "buy", LONG, position_side="LONG"))
        assert sides(sim, key) == pytest.approx({"LONG": LONG, "SHORT": -SHORT})
        await bot.do(lambda ctx: ctx.refresh())

        before = len(sim.state()["orders"])
        with pytest.raises(OrderRejected) as info:
            await bot.do(
                lambda ctx: fresh(ctx).market_order(BTC, "buy", MORE, position_side="LONG")
            )
        assert info.value.code == "RISK_LIQUIDATION_BAND", info.value.sentence
        assert f"liquidation_band_pct {BAND:g} %" in info.value.sentence
        assert "LONG" in info.value.sentence
        assert len(sim.state()["orders"]) == before  # refused before any request
        # growing the SHORT takes the symbol further from liquidation: allowed
        await bot.do(lambda ctx: fresh(ctx).market_order(BTC, "sell", MORE, position_side="SHORT"))
        assert sides(sim, key) == pytest.approx({"LONG": LONG, "SHORT": -SHORT - MORE})

        def per_side() -> dict[str, Any] | None:
            liq = bot.status()["snapshot"]["extras"]["risk"]["liquidation"]
            rows = {k: liq.get(f"{BTC}|{k}") for k in ("LONG", "SHORT")}
            short = rows["SHORT"]
            if not all(rows.values()) or short is None or short["amount"] != -SHORT - MORE:
                return None
            return rows if all(r["estimate"] for r in rows.values()) else None

        await bot.do(lambda ctx: ctx.refresh())
        rows = await bot.until(per_side, timeout=15)
        assert BTC not in bot.status()["snapshot"]["extras"]["risk"]["liquidation"]
        await bot.stop()
    estimate = rows["LONG"]["estimate"]
    assert rows["SHORT"]["estimate"] == pytest.approx(estimate)  # one price for both sides
    assert rows["LONG"]["amount"] == pytest.approx(LONG)
    assert estimate < mark(sim)  # net long: a fall liquidates
    assert rows["LONG"]["distance_pct"] == pytest.approx(rows["SHORT"]["distance_pct"])
    assert rows["LONG"]["distance_pct"] > BAND

    # the simulator's truth: nothing at 0.5 % above the estimate, both sides 0.5 % below it
    move_mark_to(sim, estimate * 1.005)
    assert mark(sim) > estimate
    assert sim.state()["liquidations"] == []
    assert sides(sim, key) == pytest.approx({"LONG": LONG, "SHORT": -SHORT - MORE})
    move_mark_to(sim, estimate * 0.995)
    assert mark(sim) < estimate
    liquidated = [liq for liq in sim.state()["liquidations"] if liq["account"] == key]
    assert liquidated and all(liq["marginType"] == "CROSSED" for liq in liquidated)
    assert not any(float(p["positionAmt"]) for p in account_of(sim, key)["positions"])
