"""Build a complete engine: the core plus the Algo Service and the liquidation engine.

engine.py owns state and time; algo.py and liquidation.py need the matching code
(trading.py), which itself builds on engine.py, so they are attached here instead of being
imported by the engine.
"""

from __future__ import annotations

from perpbot.sim import algo, liquidation
from perpbot.sim.config import SimConfig
from perpbot.sim.engine import Engine


def build_engine(cfg: SimConfig) -> Engine:
    engine = Engine(cfg)
    algo.attach(engine)
    liquidation.attach(engine)
    return engine
