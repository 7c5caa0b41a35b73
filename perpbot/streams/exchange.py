"""The ccxt.pro exchange the streams use, built beside the REST one and from the same table.

Exchanges without a ccxt.pro class keep REST polling (``[exchange] streams`` defaults to on
only where ccxt.pro has the exchange; asking for streams where it has not is bad input).
The pro exchange shares the REST exchange's markets (no second exchangeInfo) and its key.
Its own REST calls are the listenKey (create, keepalive every ``[exchange]
listen_key_keepalive_s``, sent by the feed, recreate after a loss), the order-book
snapshot on each (re)subscribe, made 50 deep (weight 2, not 20).
They go through the REST client's pipeline as ``stream_rest`` requests (``piped_class``):
the kill gate (which lets them pass, as reads), the shared rate limiter (charged, waited
for, header-synced) and the signed log see them like any other request. What the exchange
needs of the run, and what it tells the feed, is a ``StreamWire`` (perpbot.streams.wire)
handed to its class, never attributes planted on the instance.
"""

from __future__ import annotations

from typing import Any

import ccxt.pro as ccxtpro

from perpbot.client.loopback import configure_loopback_pro
from perpbot.config import ExchangeSection
from perpbot.engine.reconcile import epoch_ms
from perpbot.errors import BadInput
from perpbot.streams.market import BOOK_DEPTH
from perpbot.streams.pacing import guard_client
from perpbot.streams.wire import StreamWire


def pro_class(exchange_id: str) -> type | None:
    ccxt_id = "binanceusdm" if exchange_id == "sim" else exchange_id
    return getattr(ccxtpro, ccxt_id, None)


def streams_enabled(section: ExchangeSection) -> bool:
    """``[exchange] streams``: explicit, or on when ccxt.pro supports the exchange."""
    if section.streams is False:
        return False
    supported = pro_class(section.id) is not None
    if section.streams and not supported:
        raise BadInput(
            f"[exchange] streams: ccxt.pro has no streams for {section.id!r}; "
            "set streams = false (REST polling)"
        )
    return supported


def piped_class(base: type, wire: StreamWire) -> type:
    """A ccxt.pro class whose REST requests (it builds and signs them) are sent through the
    guarded pipeline of ``wire.client`` (a GuardedClient) instead of its own session, whose
    connections are budgeted, and whose positions carry the transaction time; it counts the
    positions it leaves out as out of order in ``wire`` (one class per exchange: the wire
    is its own)."""

    class Piped(base):  # type: ignore[misc, valid-type]
        perpbot_wire: StreamWire

        def client(self, url):  # type: ignore[no-untyped-def]
            fresh = url not in (self.clients or {})
            client = super().client(url)
            if fresh:  # its dials and messages are budgeted (perpbot.streams.pacing)
                private = is_private_url(self, url)
                wire = self.perpbot_wire
                guard_client(client, wire.connections, wire.messages_per_s, private=private)
            return client

        def handle_positions(self, client, message):  # type: ignore[no-untyped-def]
            stamp_transaction_time(message)
            self.perpbot_wire.reordered_positions += drop_reordered(message, self.positions)
            return super().handle_positions(client, message)

        async def fetch(self, url, method="GET", headers=None, body=None):  # type: ignore[no-untyped-def]
            what = "order book" if "/depth" in url else "listenKey"
            return await self.perpbot_wire.client.call(
                "stream_rest", url, method, headers, body, intent=f"stream {what}"
            )

    Piped.perpbot_wire = wire  # given, never looked up on the exchange
    Piped.__name__ = f"Piped_{base.__name__}"
    return Piped


def stamp_transaction_time(message: Any) -> None:
    """Copy an ACCOUNT_UPDATE's transaction time ``T`` into each of its positions (ccxt.pro
    keeps their raw rows as ``info``). ccxt.pro dates the positions by the event time ``E``
    only; ``T`` is the time of the change, the one positionRisk's ``updateTime`` gives, so
    the engine can tell an older update from a newer one whichever way it came
    (perpbot.engine.state RunState.admit)."""
    if not isinstance(message, dict) or message.get("T") is None:
        return
    for row in (message.get("a") or {}).get("P") or []:
        if isinstance(row, dict):
            row.setdefault("T", message["T"])


def drop_reordered(message: Any, caches: Any) -> int:
    """Leave out of an ACCOUNT_UPDATE each position older (its ``T``) than the one ccxt.pro
    already holds for the same symbol and positionSide: delivered out of order. ccxt.pro
    keeps one position per symbol and side and would replace the newer one with it, and
    the run reads positions from that cache (perpbot.streams.feed). Returns how many."""
    data = message.get("a") if isinstance(message, dict) else None
    rows = data.get("P") if isinstance(data, dict) else None
    if not rows:
        return 0
    newest: dict[tuple[Any, Any], int] = {}
    for cache in (caches or {}).values():
        for p in cache:
            info = p.get("info") or {}
            t = epoch_ms(info.get("T"))
            key = (info.get("s"), info.get("ps"))
            if t is not None and t > newest.get(key, 0):
                newest[key] = t
    kept = [
        r
        for r in rows
        if not isinstance(r, dict)
        or (t := epoch_ms(r.get("T"))) is None
        or t >= newest.get((r.get("s"), r.get("ps")), 0)
    ]
    data["P"] = kept
    return len(rows) - len(kept)


def make_pro_exchange(section: ExchangeSection, wire: StreamWire, base_url: str | None) -> Any:
    """The pro exchange for ``section``, its REST sent through ``wire.client`` (the
    GuardedClient, whose REST exchange lends it its key and markets), its connections and
    messages budgeted as ``wire`` says."""
    cls = pro_class(section.id)
    assert cls is not None
    rest = wire.client.exchange
    config: dict[str, Any] = {"enableRateLimit": False, "timeout": section.timeout_ms}
    if rest.apiKey:
        config.update(apiKey=rest.apiKey, secret=rest.secret)
    ex = piped_class(cls, wire)(config)
    if base_url:
        configure_loopback_pro(ex, base_url)
    elif section.sandbox:
        ex.set_sandbox_mode(True)
    ex.options["watchOrderBookLimit"] = BOOK_DEPTH
    ex.options["listenKeyRefreshRate"] = int(section.listen_key_keepalive_s * 1000)
    # one connection per stream route (market, public) rather than ccxt.pro's round-robin
    # over up to 50, one per subscription: new connections are the scarce budget (300 per
    # 5 min per IP, shared by every bot); up to 200 subscriptions share one (ccxt.pro's
    # subscriptionLimitByStream, Binance's newer per-connection figure); perpbot makes two
    # per symbol. Their subscribe messages are paced (perpbot.streams.pacing).
    ex.options["streamLimits"] = {**(ex.options.get("streamLimits") or {}), "linear": 1}
    ex.options["watchPositions"] = {
        **(ex.options.get("watchPositions") or {}),
        "fetchPositionsSnapshot": False,  # the REST reconcile reads positions
        "awaitPositionsSnapshot": False,
    }
    ex.set_markets(rest.markets)
    return ex


def listen_key(ex: Any) -> str | None:
    """The user stream's listenKey ``ex`` holds (None before the first or after a failed
    keepalive, which makes ccxt.pro forget it)."""
    key = (ex.options.get("linear") or {}).get("listenKey")
    return key if isinstance(key, str) and key else None


def is_private_url(ex: Any, url: str) -> bool:
    """Whether ``url`` is a user-stream connection of ``ex`` (its listenKey's)."""
    key = listen_key(ex)
    return "/private" in url or "listenKey" in url or bool(key and key in url)


def forget_listen_key(ex: Any) -> None:
    """Make the next user-stream subscription ask for a listenKey again (POST returns the
    live key or a new one): after a loss the cached key may have expired (-1125), and
    ccxt.pro would otherwise reuse it until its refresh time (nautilus_trader#3861)."""
    for bucket in ("linear", "inverse", "future", "delivery"):
        opts = ex.options.get(bucket)
        if isinstance(opts, dict) and "lastAuthenticatedTime" in opts:
            opts["lastAuthenticatedTime"] = 0
