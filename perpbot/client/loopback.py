"""Point an unmodified ccxt ``binanceusdm`` at a loopback base URL (the simulator,
embedded or served by `perpbot sim serve`), identically everywhere.

The production client (client/transport.py, streams/exchange.py), the simulator's live
source and the tests all call this, so they cannot drift: the whole ``urls['api']`` dict is
replaced (a deep-merged constructor config would leave the real binance.com hosts in
place), sapi is routed to the simulator too, currencies are not fetched (that would call
sapi capital endpoints first), and the futures error-code table is merged into the global
one because ccxt picks it by hostname (wire reference, sec. 5). Plain settings: it imports
nothing of the simulator.
"""

from __future__ import annotations

from typing import Any


def loopback_urls(base_url: str) -> dict[str, str]:
    """The ``urls['api']`` dict for a simulator at ``base_url`` (no trailing slash)."""
    base = base_url.rstrip("/")
    return {
        "fapiPublic": base + "/fapi/v1",
        "fapiPrivate": base + "/fapi/v1",
        "fapiPublicV2": base + "/fapi/v2",
        "fapiPrivateV2": base + "/fapi/v2",
        "fapiPublicV3": base + "/fapi/v3",
        "fapiPrivateV3": base + "/fapi/v3",
        "fapiData": base + "/futures/data",
        "sapi": base + "/sapi/v1",
    }


def configure_loopback(ex: Any, base_url: str) -> None:
    """Configure a constructed ccxt binanceusdm (sync or async) for the simulator."""
    ex.urls["api"] = loopback_urls(base_url)
    options = ex.options
    options["fetchCurrencies"] = False
    options["fetchMarkets"] = {"types": ["linear"]}
    options["adjustForTimeDifference"] = False
    fetch_open = dict(options.get("fetchOpenOrders") or {})
    fetch_open["warnWithoutSymbol"] = False
    options["fetchOpenOrders"] = fetch_open
    options["warnOnFetchOpenOrdersWithoutSymbol"] = False
    ex.exceptions["exact"].update(ex.exceptions["linear"]["exact"])


def loopback_ws_urls(base_url: str) -> dict[str, Any]:
    """The ``urls['api']['ws']`` dict for ccxt.pro: streams and the WebSocket API."""
    ws = "ws" + base_url.rstrip("/").removeprefix("http")
    return {"linear": ws + "/ws", "ws-api": {"linear": ws + "/ws-fapi/v1"}}


def configure_loopback_pro(ex: Any, base_url: str) -> None:
    """Configure a constructed ``ccxt.pro.binanceusdm``: REST as above plus its streams.

    ccxt.pro derives the routed ``/public/ws``, ``/market/ws`` and ``/private/ws`` URLs
    from ``linear``, and keeps the listenKey alive every ``listenKeyRefreshRate`` ms.
    """
    configure_loopback(ex, base_url)
    ex.urls["api"]["ws"] = loopback_ws_urls(base_url)
