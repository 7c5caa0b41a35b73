"""Rotating stream connections ahead of the exchange's 24 h disconnect.

Binance closes every stream connection after 24 h. Handled as a loss, that is a gap: the
user stream is down until it reconnects, and its events meanwhile come from a REST
backfill. Rotated ahead of time instead (``[exchange] stream_rotate_s``, 23.5 h by
default), the user stream has none:

1. the old connection is taken out of ccxt.pro's table (it stays open and keeps
   delivering), and a new one is dialled on the same URL (budgeted like any dial);
   a user-data connection subscribes by its URL (the listenKey), so once connected it
   receives every event the old one does;
2. the old connection's pending watches are rejected with ``Rotated``: the stream loops
   take it as a switch, not a loss (no backoff, no backfill) and watch again at once,
   on the new connection;
3. the old connection stays open ``OVERLAP_S`` longer, and what it still delivers is
   handled as if the new one had (it wakes the watches there): an event the exchange
   sent before it registered the new connection is on its way on the old one only, and
   closing the old one at once discarded it (a lost fill);
4. the old connection is closed (marked as closed by us, so ccxt.pro does not drop the
   new one from its table).

Events that arrive on both connections during the overlap are applied twice to ccxt.pro's
caches (by id) and deduplicated by trade id in the engine, so none is lost or counted
twice; a position update arriving late is left out as out of order (perpbot.streams.
exchange). A market connection is switched the same way but closed first (its subscriptions
are messages, and two connections feeding one local book would desync it): its loops
resubscribe at once on a new connection and the book is resynced from a new snapshot, so
its data is a few hundred milliseconds older for a moment, and nothing else.
If the new connection cannot be made, the old one is kept and the rotation is tried again
(``RETRY_S``); should the exchange's own disconnect come first, it is a loss like any other.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import ccxt

RETRY_S = 30.0  # after a failed rotation, the next attempt
DIAL_WAIT_S = 10.0
OVERLAP_S = 2.0  # a replaced user-data connection delivers what is on its way this long


class Rotated(ccxt.NetworkError):
    """A watch of a connection that was replaced by a new one (not a loss)."""


def connection_age_s(ex: Any, client: Any) -> float | None:
    """How long ``client`` has been connected (None: not connected)."""
    established = getattr(client, "connectionEstablished", None)
    if not established or client.closed():
        return None
    return (ex.milliseconds() - established) / 1000.0


async def rotate(ex: Any, url: str, old: Any, *, make_first: bool) -> None:
    """Replace ``old`` (ccxt.pro's client for ``url``) by a new connection; with
    ``make_first`` the new one is connected before the old one lets go. Raises when the
    new connection could not be made (the old one is then kept)."""
    clients = ex.clients
    if clients.get(url) is not old:
        return  # already replaced or lost meanwhile
    del clients[url]
    if make_first:
        new = ex.client(url)
        # subscribed by its URL, it carries what the old one did: ccxt.pro reads the
        # account type of a balance update from the connection's subscriptions, and
        # failed on one that came before the loops watched there again
        new.subscriptions.update(old.subscriptions)
        try:
            await asyncio.wait_for(asyncio.shield(new.connect(ex.session, 0)), DIAL_WAIT_S)
        except BaseException:
            if clients.get(url) is new:
                del clients[url]
            clients.setdefault(url, old)  # keep the old one: it may still have time
            new.error = Rotated(f"perpbot gave up rotating to a new connection {url}")
            new.reject(new.error)  # a loop that moved to it watches again (on the old one)
            with contextlib.suppress(Exception):
                await new.close()
            raise
        old.on_message_callback = lambda _old, message: ex.handle_message(new, message)
    why = Rotated(f"perpbot rotated the stream connection {url} (ahead of the 24 h limit)")
    old.error = why  # closed by us: ccxt.pro's on_close then leaves its table alone
    old.reject(why)  # the loops watching on it watch again, on the new connection
    try:
        if make_first:
            await asyncio.sleep(OVERLAP_S)
    finally:
        with contextlib.suppress(Exception):
            await old.close()
