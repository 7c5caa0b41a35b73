"""The model's correlation edges against the simulator: shock one symbol, follow the
cascade in a correlated one.

A case is a simulator market of two symbols, BTCUSDT (the shocked one) and ETHUSDT, each
with its own leveraged crowd on a quiet walk (validate.py's market), whose exogenous
shocks correlate by ``rho`` (``[market] shock_correlation``: a jump of BTCUSDT moves
ETHUSDT by ``rho`` times it). The account is long ETHUSDT only, with its liquidation price
``beyond_pct`` further than ETHUSDT's share of the shock. The simulated side jumps BTCUSDT
and steps the engine; the truth is the engine's record of ETHUSDT's crowd liquidations and
of the account's liquidation. The predicted side is the model on both books, both stated
crowds, the correlation ``rho`` between them and the shock on BTCUSDT.

What the simulator shares between symbols is the exogenous part of a move only: BTCUSDT's
own liquidations move BTCUSDT alone. The model also passes ``rho`` times each
liquidation's lasting move on to the other symbol (docs/stress.md, "Edges"), so where
BTCUSDT's cascade runs far the model's ETHUSDT moves further than the simulator's. So each
case is predicted twice: with ``[dynamics] cross_impact = 0`` (the market as it is: the
correlation edges carry the shock only) and with the default 1 (the error of that
assumption on a market without cross-impact); ``cross_pct`` reports its size.
"""

from __future__ import annotations

from dataclasses import dataclass

from perpbot.sim.assemble import build_engine
from perpbot.sim.config import SimConfig
from perpbot.sim.engine import Engine
from perpbot.stress.cascade import build_nodes, propagate
from perpbot.stress.inputs import Scenario, from_document
from perpbot.stress.validate import (
    START_MS,
    STEP_MS,
    Case,
    Measured,
    crowd_symbol,
    market_document,
    open_account,
    quiet_market,
)

SHOCKED = "BTCUSDT"
FOLLOWER = "ETHUSDT"


@dataclass(slots=True)
class PairCase(Case):
    rho: float = 0.6  # the correlation of the two symbols' exogenous shocks

    def label(self) -> str:
        return f"rho {self.rho:g}, " + Case.label(self)

    @property
    def follower_shock_pct(self) -> float:
        return self.rho * self.shock_pct


@dataclass(slots=True)
class PairMeasured(Measured):
    # predicted only: how far the model moved the follower's price through the shocked
    # symbol's liquidations (its correlation edges), percent of its start
    cross_pct: float = 0.0


def sim_config(case: PairCase) -> SimConfig:
    market = quiet_market(case)
    market["shock_correlation"] = case.rho
    symbols = [
        crowd_symbol(case, SHOCKED, "BTC", 60000.0).model_dump(),
        crowd_symbol(case, FOLLOWER, "ETH", 3000.0).model_dump(),
    ]
    return SimConfig.model_validate(
        {
            "seed": case.seed,
            "clock": "manual",
            "start_time_ms": START_MS,
            "symbols": symbols,
            "market": market,
        }
    )


def scenario_from_engine(
    engine: Engine, case: PairCase, acct: object, cross_impact: float
) -> Scenario:
    """The model's inputs as a trader would state them, with ``cross_impact`` (the
    simulator's market has none: 0 states it as it is; 1 is the model's default)."""
    doc = market_document(engine, case.horizon_s, acct)
    doc["correlations"] = {f"{SHOCKED}/{FOLLOWER}": case.rho}
    doc["dynamics"]["cross_impact"] = cross_impact
    doc.update({"latency_ms": 0, "shocks": [case.shock_pct], "shock_symbol": SHOCKED})
    return from_document(doc, where="validation")


def predict(scenario: Scenario) -> PairMeasured:
    nodes = build_nodes(scenario)
    shock = scenario.shocks[0]
    out = propagate(scenario, nodes, shock)
    mine = [r.time_s for r in out.liquidations if nodes[r.node].account]
    crowd = sum(
        nodes[r.node].qty
        for r in out.liquidations
        if not nodes[r.node].account and r.symbol == FOLLOWER
    )
    start = out.start[FOLLOWER]
    shocked = out.path[FOLLOWER][1][1]
    lowest = min(m for _, m in out.path[FOLLOWER])
    rho = scenario.correlation(SHOCKED, FOLLOWER) * scenario.dynamics.cross_impact
    moves = [r.moved / out.start[SHOCKED] for r in out.liquidations if r.symbol == SHOCKED]
    cross = -rho * sum(moves)
    return PairMeasured(
        mine[0] if mine else None,
        crowd,
        (shocked - lowest) / start * 100,
        cross_pct=cross * 100,
    )


def simulate(engine: Engine, case: PairCase, acct: object) -> Measured:
    mkt = engine.markets[FOLLOWER]
    start = mkt.mark
    t0 = engine.clock.now_ms()
    engine.jump(SHOCKED, case.shock_pct)  # the follower moves rho x the shock with it
    shocked = start * (1 + case.follower_shock_pct / 100)
    lowest = mkt.mark
    for _ in range(int(case.horizon_s * 1000 / STEP_MS)):
        engine.clock.advance(STEP_MS)
        engine.sync()
        lowest = min(lowest, mkt.mark)
    key = getattr(acct, "api_key", None)
    mine = [r["time"] for r in engine.liquidations if r["account"] == key]
    crowd = sum(
        float(r["qty"])
        for r in engine.crowd_liquidations
        if r["time"] >= t0 and r["symbol"] == FOLLOWER
    )
    return Measured(
        (mine[0] - t0) / 1000 if mine else None, crowd, (shocked - lowest) / start * 100
    )


def run_case(
    case: PairCase, cross_impacts: tuple[float, ...] = (0.0, 1.0)
) -> tuple[list[PairMeasured], Measured]:
    """(predicted with each of ``cross_impacts``, simulated) for the follower ETHUSDT."""
    engine = build_engine(sim_config(case))
    acct = open_account(engine, case, FOLLOWER, case.follower_shock_pct)
    engine.clock.advance(STEP_MS)
    engine.sync()
    predicted = [predict(scenario_from_engine(engine, case, acct, c)) for c in cross_impacts]
    return predicted, simulate(engine, case, acct)
