"""A loopback Binance USD-M futures exchange that unmodified ccxt talks to over HTTP.

Public API (kept stable; other parts of perpbot and their tests depend on it)::

    from perpbot.sim import SimConfig, SimServer, start_in_thread, SimHandle
    handle = start_in_thread(SimConfig(seed=7), host="127.0.0.1", port=0)
    key, secret = handle.create_account()
    ...
    handle.stop()

See docs/simulator.md for sim.toml keys, the fault plan format and control endpoints.
"""

from perpbot.sim.config import SimConfig
from perpbot.sim.handle import SimHandle, start_in_thread
from perpbot.sim.server import SimServer

__all__ = ["SimConfig", "SimHandle", "SimServer", "start_in_thread"]
