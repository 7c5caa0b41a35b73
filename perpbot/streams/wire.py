"""What the streams' ccxt.pro exchange is handed, and what it hands back to the feed.

``StreamWire`` is made by the composition root (``perpbot.app.engine_parts``) and given
both to the exchange (``make_pro_exchange``: its subclass holds it as a class attribute of
its own, ``piped_class``) and to the ``StreamFeed``: nothing is planted on the ccxt object
or looked up on it (issue 13). No ccxt here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perpbot.config import LimitsSection
from perpbot.ratelimit.connections import ConnectionBudget


@dataclass(slots=True)
class StreamWire:
    client: Any  # the GuardedClient whose pipeline sends the stream's own REST
    connections: ConnectionBudget | None  # new connections' budget (the rate limiter's)
    messages_per_s: int  # messages each connection may send per second
    reordered_positions: int = 0  # ACCOUNT_UPDATE positions left out as out of order


def stream_wire(client: Any, limits: LimitsSection) -> StreamWire:
    """The wire for a run's streams: REST through ``client`` (a GuardedClient), connections
    budgeted by its rate limiter (when it has one), messages paced by ``limits``."""
    limiter = client.pipeline.layer("ratelimit")
    return StreamWire(
        client=client,
        connections=limiter.connections if limiter is not None else None,
        messages_per_s=limits.ws_messages_per_s,
    )
