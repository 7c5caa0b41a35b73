"""Leveraged crowd traders: a move liquidates them on the mark and their liquidation
orders move the price further (a cascade over seconds), as in Binance's liquidation
protocol where the mark price triggers:
https://www.binance.com/en/support/faq/liquidation-protocols-360033525271
"""

from __future__ import annotations

from perpbot.sim.config import SymbolConfig

from .conftest import quiet_config, quiet_market

THIN = [SymbolConfig(symbol="BTCUSDT", base_asset="BTC", price=60000.0, crowd_level_qty=0.05)]


def _run(sim_factory, traders: int) -> tuple[float, dict]:
    market = quiet_market(crowd_traders=traders, crowd_leverage_median=25, crowd_position_qty=1.0)
    sim = sim_factory(quiet_config(symbols=THIN, market=market))
    sim.jump("BTCUSDT", -2.0)
    after_jump = float(sim.state()["markets"]["BTCUSDT"]["mid"])
    for _ in range(30):
        sim.advance(1000)
    return after_jump, sim.state()


def test_a_drop_liquidates_leveraged_longs_in_a_cascade(sim_factory) -> None:
    calm_jump, calm = _run(sim_factory, 0)
    assert calm["crowd_liquidations"] == []
    assert float(calm["markets"]["BTCUSDT"]["mid"]) == calm_jump
    after_jump, state = _run(sim_factory, 300)
    liqs = state["crowd_liquidations"]
    assert liqs and all(r["side"] == "SELL" for r in liqs)  # longs closed by market sells
    assert all(r["mark"] <= r["liqPrice"] for r in liqs)  # triggered on the mark
    assert len({r["time"] for r in liqs}) > 1  # not all at once: one wave sets off the next
    assert float(state["markets"]["BTCUSDT"]["mid"]) < after_jump  # the cascade moved it
