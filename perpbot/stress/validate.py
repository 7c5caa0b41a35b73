"""The model against the simulator's crowd: the same shock, predicted and simulated.

A validation case is a simulator market with a leveraged crowd (perpbot.sim.crowd_traders)
on a quiet walk (no noise, no random jumps or takers, so the shock and the cascade are the
only moves), one account with a long position whose liquidation price sits beyond the
shock, and a shock of ``shock_pct``. The simulated side runs the simulator's own engine on
a manual clock: the shock is ``Engine.jump`` (what ``POST /__sim/market {"jump": ...}``
calls), then 200 ms steps; the truth is the engine's record of crowd liquidations and of
the account's liquidation. The predicted side is the model on inputs read from the same
market: its book (the depth snapshot an exchange would serve), the crowd's distribution as
the configuration states it (what a trader would state as assumptions), and the market's
dynamics from its configuration.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from perpbot.sim.assemble import build_engine
from perpbot.sim.config import SimConfig, SymbolConfig
from perpbot.sim.engine import Engine
from perpbot.sim.handlers_market import index_constituents
from perpbot.sim.trading import place_order
from perpbot.stress.cascade import build_nodes, propagate
from perpbot.stress.inputs import Scenario, from_document
from perpbot.stress.ranges import depth_range

SYMBOL = "BTCUSDT"
STEP_MS = 200
START_MS = 1_767_225_600_000 - 3_600_000  # a fixed start: the same run every time
SIZE_LOG_STDEV = 0.8  # crowd_traders.py draws sizes log-normal(0, 0.8) around the median
LEVERAGE_LOG_STDEV = 0.6  # ... and leverage log-normal(median, 0.6), capped at 125x
ENTRY_SPREAD = 0.002  # ... entries within a 0.2 % stdev of the start price


@dataclass(slots=True)
class Case:
    shock_pct: float
    beyond_pct: float  # the account's liquidation: this much further than the shock
    leverage_median: float = 20.0
    traders: int = 2000
    level_qty: float = 0.3  # the book's mean size per level (base)
    trader_qty: float = 0.05  # a crowd trader's median size (base)
    seed: int = 1
    horizon_s: float = 60.0

    def label(self) -> str:
        return (
            f"shock {self.shock_pct:+g}%, liq {self.beyond_pct:g}% beyond, crowd "
            f"{self.traders}x{self.leverage_median:g}x, book {self.level_qty:g}/lvl, "
            f"seed {self.seed}"
        )


@dataclass(slots=True)
class Measured:
    time_to_liq_s: float | None  # the account's liquidation, seconds after the shock
    crowd_qty: float  # crowd size liquidated (base)
    move_pct: float  # how far the mark went beyond the shock, percent of the start
    # predicted only: the time to liquidation on the book 25 % thicker and thinner
    # (ranges.py; None: not liquidated there), and whether the shock is borderline
    liq_range_s: tuple[float | None, float | None] = (None, None)
    borderline: bool = False


def sim_config(case: Case) -> SimConfig:
    market = {
        "volatility": 0.0,
        "jump_rate": 0.0,
        "taker_rate": 0.0,
        "premium_vol": 0.0,
        "premium_regime_vol": 0.0,
        "venue_outage_per_h": 0.0,
        "venue_noise": 0.0,
        "crowd_traders": case.traders,
        "crowd_leverage_median": case.leverage_median,
        "crowd_position_qty": case.trader_qty,
        "crowd_reopen_s": 1e9,
    }
    symbol = SymbolConfig(
        symbol=SYMBOL,
        base_asset="BTC",
        price=60000.0,
        crowd_levels=200,
        crowd_level_step_ticks=50,
        crowd_level_qty=case.level_qty,
    )
    return SimConfig.model_validate(
        {
            "seed": case.seed,
            "clock": "manual",
            "start_time_ms": START_MS,
            "symbols": [symbol.model_dump()],
            "market": market,
        }
    )


def open_account(engine: Engine, case: Case) -> Any:
    """An account long 0.05 BTC with the wallet that puts its liquidation price
    ``shock + beyond`` percent below the start (cross margin)."""
    mkt = engine.markets[SYMBOL]
    qty = 0.05
    distance = (abs(case.shock_pct) + case.beyond_pct) / 100.0
    balance = qty * mkt.mark * (distance + 0.004) + 1.0
    acct = engine.create_account(balance=balance)
    acct.leverage[SYMBOL] = 125  # the wallet, not the leverage, sets a cross liquidation
    place_order(
        engine, acct, {"symbol": SYMBOL, "side": "BUY", "type": "MARKET", "quantity": f"{qty:.3f}"}
    )
    return acct


def assumptions(cfg: SimConfig, horizon_s: float) -> dict[str, Any]:
    """What a trader would state about this market in a scenario file: the crowd's
    distribution and the market's dynamics, from the simulator's configuration."""
    market = cfg.market
    mean_size = market.crowd_position_qty * math.exp(SIZE_LOG_STDEV**2 / 2)
    # the mark follows the index, an average of spot venues that requote on their own clocks
    venues = [
        market.venue_refresh_ms * (1 + 2 * i / max(1, market.index_venues - 1)) / 1000.0
        for i in range(market.index_venues)
    ]
    crowd = {
        "open_interest": market.crowd_traders * mean_size,
        "position_size": mean_size,
        "position_size_sigma": SIZE_LOG_STDEV,
        "leverage_median": market.crowd_leverage_median,
        "leverage_sigma": LEVERAGE_LOG_STDEV,
        "mmr": market.crowd_mmr,
        "entry_spread": ENTRY_SPREAD,
        "long_share": 0.5,
    }
    dynamics = {
        "mark_sources_s": venues,
        "impact_permanent": market.impact_permanent,
        "book_half_life_s": market.book_half_life_s,
        "insurance_fund": 0.0,
        "horizon_s": horizon_s,
        "engine_step_s": market.tick_ms / 1000.0,  # it steps prices and liquidations so
    }
    return {"crowd": {s.symbol: dict(crowd) for s in cfg.symbols}, "dynamics": dynamics}


def scenario_from_engine(engine: Engine, case: Case, acct: Any) -> Scenario:
    """The model's inputs, read from the market as a trader would see it."""
    mkt = engine.markets[SYMBOL]
    spec = mkt.spec
    bids, asks = mkt.crowd()
    pv = next(p for p in engine.view(acct).positions if p.spec.symbol == SYMBOL)
    doc = assumptions(engine.cfg, case.horizon_s)
    # the index's constituents and their weights are public (Binance: /fapi/v1/constituents)
    listed = index_constituents(engine, SYMBOL)["constituents"]
    doc["dynamics"]["mark_source_weights"] = [float(c["weight"]) for c in listed]
    doc["books"] = {
        SYMBOL: {
            "bids": [[spec.px(p), spec.qty(q)] for p, q in bids],
            "asks": [[spec.px(p), spec.qty(q)] for p, q in asks],
        }
    }
    doc["positions"] = [
        {"symbol": SYMBOL, "amount": spec.qty(pv.pos.amt), "entry": pv.pos.entry,
         "liquidation_price": pv.liq_price}
    ]  # fmt: skip
    doc.update({"latency_ms": 0, "shocks": [case.shock_pct], "shock_symbol": SYMBOL})
    return from_document(doc, where="validation")


def predict(scenario: Scenario) -> Measured:
    nodes = build_nodes(scenario)
    out = propagate(scenario, nodes, scenario.shocks[0])
    mine = [r.time_s for r in out.liquidations if nodes[r.node].account]
    crowd = sum(nodes[r.node].qty for r in out.liquidations if not nodes[r.node].account)
    start = out.start[SYMBOL]
    shocked = start * (1 + scenario.shocks[0] / 100)
    lowest = min(m for _, m in out.path[SYMBOL])
    span, thin, deep = depth_range(scenario, nodes, out)
    (me,) = [n.id for n in nodes if n.account]
    return Measured(
        mine[0] if mine else None,
        crowd,
        (shocked - lowest) / start * 100,
        (deep.liquidated_s[me], thin.liquidated_s[me]),
        span["borderline"],
    )


def simulate(engine: Engine, case: Case, acct: Any) -> Measured:
    mkt = engine.markets[SYMBOL]
    start = mkt.mark
    t0 = engine.clock.now_ms()
    engine.jump(SYMBOL, case.shock_pct)
    shocked = start * (1 + case.shock_pct / 100)
    lowest = mkt.mark
    steps = int(case.horizon_s * 1000 / STEP_MS)
    for _ in range(steps):
        engine.clock.advance(STEP_MS)
        engine.sync()
        lowest = min(lowest, mkt.mark)
    mine = [r["time"] for r in engine.liquidations if r["account"] == acct.api_key]
    crowd = sum(float(r["qty"]) for r in engine.crowd_liquidations if r["time"] >= t0)
    return Measured(
        (mine[0] - t0) / 1000 if mine else None, crowd, (shocked - lowest) / start * 100
    )


def run_case(case: Case) -> tuple[Measured, Measured]:
    """(predicted, simulated) for one case."""
    engine = build_engine(sim_config(case))
    acct = open_account(engine, case)
    engine.clock.advance(STEP_MS)
    engine.sync()
    predicted = predict(scenario_from_engine(engine, case, acct))
    return predicted, simulate(engine, case, acct)


def range_error(ends: tuple[float | None, float | None], simulated: float | None) -> float:
    """How far ``simulated`` lies outside the range ``ends`` (relative; 0 inside). None is
    "not liquidated", beyond every time: a range with a None end reaches to never."""
    if simulated is None:
        return 0.0 if None in ends else 1.0
    times = [t for t in ends if t is not None]
    if not times:
        return 1.0
    low = min(times)
    high = math.inf if None in ends else max(times)
    if low <= simulated <= high:
        return 0.0
    near = low if simulated < low else high
    return abs(near - simulated) / simulated if simulated else 1.0


def relative_error(predicted: float | None, simulated: float | None) -> float | None:
    """|predicted - simulated| / simulated; 1.0 (100 %) when only one of them happened."""
    if predicted is None and simulated is None:
        return None
    if predicted is None or simulated is None:
        return 1.0
    if simulated == 0:
        return 0.0 if predicted == 0 else 1.0
    return abs(predicted - simulated) / simulated
