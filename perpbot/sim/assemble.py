"""Build a complete engine: the core plus matching-driven fills, algo triggers, liquidation.

engine.py owns state and time; trading.py (matching), algo.py and liquidation.py build on
it, so they are attached here as callbacks instead of being imported by the engine (no
import cycle, no function-level imports). Always create engines with ``build_engine``.
"""

from __future__ import annotations

from perpbot.sim import algo, crowd_traders, liquidation, trading
from perpbot.sim.config import SimConfig
from perpbot.sim.engine import Engine


def build_engine(cfg: SimConfig) -> Engine:
    engine = Engine(cfg)
    engine.sweeper = lambda symbol, t: trading.sweep(engine, symbol, t)
    engine.taker = lambda symbol, side, qty, t: trading.synthetic_take(engine, symbol, side, qty, t)
    engine.follower = lambda symbol, tick: trading.follow_tick(engine, symbol, tick)
    algo.attach(engine)
    liquidation.attach(engine)
    crowd_traders.attach(engine)
    return engine
