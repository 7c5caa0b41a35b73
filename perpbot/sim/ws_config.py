"""``[ws]`` in sim.toml: Binance's WebSocket connection rules, adjustable for tests.

Defaults are Binance USD-M's published limits. Times that a test wants to compress
(connection lifetime, listenKey validity) run on the simulator clock, so a manual clock
can "wait" 24 hours in one ``/__sim/advance``; per-second message and connection-attempt
windows run on the wall clock, because clients send in real time.
"""

from __future__ import annotations

from pydantic import Field

from perpbot.sim.strict import Strict


class WsConfig(Strict):
    max_incoming_per_s: int = Field(10, gt=0, description="client messages per second")
    max_streams_per_connection: int = Field(1024, gt=0)
    max_connections_per_window: int = Field(300, gt=0, description="new connections per IP")
    connection_window_s: float = Field(300.0, gt=0)
    max_connection_s: float = Field(86_400.0, gt=0, description="forced disconnect (sim clock)")
    listen_key_validity_s: float = Field(3_600.0, gt=0, description="sim clock")
    ping_interval_s: float = Field(180.0, gt=0)
    pong_timeout_s: float = Field(600.0, gt=0)
    flush_ms: int = Field(100, gt=0, description="cadence of diff depth / bookTicker / klines")
    mark_price_ms: int = Field(1000, gt=0, description="markPrice@1s and tickers cadence")
    margin_call_ratio: float = Field(
        0.8, gt=0, le=1, description="MARGIN_CALL when maint margin / margin balance >= this"
    )
