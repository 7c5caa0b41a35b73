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
    return SimConfig.model_validate(
        {
            "seed": case.seed,
            "clock": "manual",
            "start_time_ms": START_MS,
            "symbols": [crowd_symbol(case, SYMBOL, "BTC", 60000.0).model_dump()],
            "market": quiet_market(case),
        }
    )


def crowd_symbol(case: Case, symbol: str, base: str, price: float) -> SymbolConfig:
    """A symbol whose book has 200 levels a price step of 1/12000 of ``price`` apart
    (5 USDT at 60000), ``case.level_qty`` (base) each on average."""
    tick = 0.1 if price >= 10_000 else 0.01
    return SymbolConfig(
        symbol=symbol,
        base_asset=base,
        price=price,
        tick_size=tick,
        crowd_levels=200,
        crowd_level_step_ticks=max(1, round(price / 12_000 / tick)),
        crowd_level_qty=case.level_qty,
    )


def quiet_market(case: Case) -> dict[str, Any]:
    """A market whose only moves are the shock and the cascade: no noise, no random jumps
    or takers, and a crowd of ``case.traders`` per symbol that does not reopen."""
    return {
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


def open_account(
    engine: Engine, case: Case, symbol: str = SYMBOL, shocked_pct: float | None = None
) -> Any:
    """An account long 0.05 BTC's worth of ``symbol`` with the wallet that puts its
    liquidation price ``shocked + beyond`` percent below the start (cross margin;
    ``shocked_pct``: how far the shock moves ``symbol``, the case's shock by default)."""
    mkt = engine.markets[symbol]
    qty = round(0.05 * 60000.0 / mkt.mark, 3)
    moved = abs(case.shock_pct if shocked_pct is None else shocked_pct)
    distance = (moved + case.beyond_pct) / 100.0
    balance = qty * mkt.mark * (distance + 0.004) + 1.0
    acct = engine.create_account(balance=balance)
    acct.leverage[symbol] = 125  # the wallet, not the leverage, sets a cross liquidation
    place_order(
        engine, acct, {"symbol": symbol, "side": "BUY", "type": "MARKET", "quantity": f"{qty:.3f}"}
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
    doc = market_document(engine, case.horizon_s, acct)
    doc.update({"latency_ms": 0, "shocks": [case.shock_pct], "shock_symbol": SYMBOL})
    return from_document(doc, where="validation")


def market_document(engine: Engine, horizon_s: float, acct: Any) -> dict[str, Any]:
    """Every symbol's book, index weights and stated crowd, and the account's positions,
    as a scenario document."""
    doc = assumptions(engine.cfg, horizon_s)
    doc["books"], weights = {}, {}
    for symbol, mkt in engine.markets.items():
        spec = mkt.spec
        bids, asks = mkt.crowd()
        doc["books"][symbol] = {
            "bids": [[spec.px(p), spec.qty(q)] for p, q in bids],
            "asks": [[spec.px(p), spec.qty(q)] for p, q in asks],
        }
        # the index's constituents and their weights are public (/fapi/v1/constituents)
        listed = index_constituents(engine, symbol)["constituents"]
        weights[symbol] = [float(c["weight"]) for c in listed]
    doc["dynamics"]["mark_source_weights"] = weights
    doc["positions"] = [
        {"symbol": pv.spec.symbol, "amount": pv.spec.qty(pv.pos.amt), "entry": pv.pos.entry,
         "liquidation_price": pv.liq_price}
        for pv in engine.view(acct).positions
    ]  # fmt: skip
    return doc


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
