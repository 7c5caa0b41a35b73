"""The model's ADL verdict against the simulator's insurance fund and deleveraging.

A case is validate.py's market (one symbol, a leveraged crowd, a quiet walk) with an
insurance fund of ``insurance_fund`` (USDT) and one account short 0.05 BTC with ample
margin: the side a down shock makes a winner, so the side an ADL closes. The simulated
side jumps the price and steps the engine; in the simulator each crowd liquidation is a
market order whose fill past the bankruptcy price is a loss the fund pays (a fill before
it leaves the rest of the margin to the fund), and what the fund cannot pay is
auto-deleveraged against the accounts' opposite positions (perpbot.sim.crowd_traders).
The truth: the crowd's losses past bankruptcy and whether the account was deleveraged. The
predicted side is ``perpbot risk stress``'s ADL verdict on the market's book, the crowd's
stated distribution and the stated fund: ``high`` says ADL, ``low`` and ``none`` say not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perpbot.sim.assemble import build_engine
from perpbot.sim.config import SimConfig
from perpbot.sim.engine import Engine
from perpbot.sim.trading import place_order
from perpbot.stress.cascade import build_nodes, propagate
from perpbot.stress.explain import adl
from perpbot.stress.inputs import Scenario, from_document
from perpbot.stress.validate import STEP_MS, SYMBOL, Case, market_document, sim_config

SHORT_QTY = 0.05


@dataclass(slots=True)
class AdlCase(Case):
    insurance_fund: float = 0.0  # USDT, the simulator's and the model's

    def label(self) -> str:
        return f"fund {self.insurance_fund:,.0f}, " + Case.label(self)


@dataclass(slots=True)
class AdlOutcome:
    loss: float  # the crowd's losses past bankruptcy (quote)
    deleveraged: bool  # ADL said (predicted: risk "high") or done (simulated)
    risk: str = ""  # predicted only: none / low / high
    adl_qty: float = 0.0  # simulated only: the account's position closed by ADL (base)
    fund_after: float = 0.0  # simulated only: the fund at the end


def adl_config(case: AdlCase) -> SimConfig:
    return sim_config(case).model_copy(update={"insurance_fund": case.insurance_fund})


def open_short(engine: Engine) -> Any:
    acct = engine.create_account(balance=100_000.0)
    place_order(
        engine, acct,
        {"symbol": SYMBOL, "side": "SELL", "type": "MARKET", "quantity": f"{SHORT_QTY:.3f}"},
    )  # fmt: skip
    return acct


def scenario_from_engine(engine: Engine, case: AdlCase, acct: Any) -> Scenario:
    doc = market_document(engine, case.horizon_s, acct)
    doc["dynamics"]["insurance_fund"] = case.insurance_fund
    doc.update({"latency_ms": 0, "shocks": [case.shock_pct], "shock_symbol": SYMBOL})
    return from_document(doc, where="validation")


def predict(scenario: Scenario) -> AdlOutcome:
    nodes = build_nodes(scenario)
    out = propagate(scenario, nodes, scenario.shocks[0])
    verdict = adl(scenario, nodes, out, SYMBOL)
    return AdlOutcome(verdict["bankruptcy_loss"], verdict["risk"] == "high", verdict["risk"])


def simulate(engine: Engine, case: AdlCase, acct: Any) -> AdlOutcome:
    t0 = engine.clock.now_ms()
    engine.jump(SYMBOL, case.shock_pct)
    for _ in range(int(case.horizon_s * 1000 / STEP_MS)):
        engine.clock.advance(STEP_MS)
        engine.sync()
    records = [r for r in engine.crowd_liquidations if r["time"] >= t0]
    loss = sum(max(0.0, r["loss"]) for r in records)
    adl_orders = [
        o
        for o in engine.orders.values()
        if o.account == acct.api_key and o.orig_type == "ADL" and o.time >= t0
    ]
    closed = sum(engine.specs[SYMBOL].qty(o.executed) for o in adl_orders)
    return AdlOutcome(loss, bool(adl_orders), adl_qty=closed, fund_after=engine.insurance_fund)


def run_case(case: AdlCase) -> tuple[AdlOutcome, AdlOutcome]:
    """(predicted, simulated) for one case."""
    engine = build_engine(adl_config(case))
    acct = open_short(engine)
    engine.clock.advance(STEP_MS)
    engine.sync()
    predicted = predict(scenario_from_engine(engine, case, acct))
    return predicted, simulate(engine, case, acct)
