"""Streams: the run sees the market and its own orders through ccxt.pro WebSockets, with
REST as the safety net (``[exchange] streams``, docs/streams.md).

    exchange.py   the ccxt.pro exchange beside the REST one; whether streams are on
    feed.py       StreamFeed: one task per stream, applying events to the engine's state
    market.py     the latest synced book and mark/funding, read by the strategy's context
    health.py     per-stream health (stale, down, reconnects) and backoff with jitter
    evidence.py   the book's evidence that the user stream owes an event (its silent stall)
    rotation.py   replacing a connection ahead of the 24 h limit (the user stream's gaplessly)
    pacing.py     each connection's dials and messages budgeted (the shared connection budget)
    wire.py       StreamWire: what the pro exchange is handed, shared with the feed
"""

from perpbot.streams.exchange import make_pro_exchange, streams_enabled
from perpbot.streams.feed import StreamFeed
from perpbot.streams.wire import StreamWire, stream_wire

__all__ = ["StreamFeed", "StreamWire", "make_pro_exchange", "stream_wire", "streams_enabled"]
