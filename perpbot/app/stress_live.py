"""`perpbot risk stress --profile`: the scenario's market inputs read from an exchange, with
a key profile, the same pipeline and signed log as `perpbot status --live`.

This account's positions (entry and liquidation price as the exchange computes them), the
order book of each position's symbol (1000 levels), the public open interest where the
exchange publishes it (Binance: ``/fapi/v1/openInterest``) and the weights of the index's
constituents (Binance: ``/fapi/v1/constituents``). What the exchange does not publish (the
crowd's leverage, how often each constituent requotes) stays an assumption the output
prints, and the user may state it in a file given alongside. A read of the constituents
that fails leaves the weights an assumption too. It connects, so it lives in the
composition root; what shapes the inputs is perpbot.stress.sources.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from perpbot.app.connect import connect
from perpbot.audit.subscriber import attach_to_bus
from perpbot.config import ExchangeSection
from perpbot.errors import BadInput, Interrupted, PermissionDenied
from perpbot.events import EventBus
from perpbot.keys.store import load_profile
from perpbot.stress.sources import plain

BOOK_LEVELS = 1000
CONSTITUENTS = "fapipublic_get_constituents"  # Binance's GET /fapi/v1/constituents (ccxt)


def live_document(profile: str, url: str | None, symbols: list[str]) -> dict[str, Any]:
    """``positions``, ``books`` and ``crowd.*.open_interest`` as a scenario document, and
    ``notes`` on what the exchange did not give."""
    return asyncio.run(_live(profile, url, symbols))


async def _live(profile: str, url: str | None, symbols: list[str]) -> dict[str, Any]:
    exchange_id = load_profile(profile).exchange
    if exchange_id == "sim" and url is None:
        raise BadInput(f"--profile {profile}: a simulator profile needs --url")
    section = ExchangeSection(id=exchange_id, url=url, profile=profile)
    run_id = f"stress-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    bus = EventBus()
    # reads only: the profile's `status` grant (read), as `perpbot status --live`
    log = attach_to_bus(bus, run_id=run_id, profile=profile, command="status")
    doc: dict[str, Any] = {
        "positions": [], "books": {}, "crowd": {}, "index_weights": {}, "notes": []
    }  # fmt: skip
    try:
        conn = await connect(section, command="status", run_id=run_id, bus=bus)
        try:
            client = conn.client
            wanted = {plain(s): s for s in symbols}
            for p in await client.fetch_positions():
                info = p.get("info") or {}
                amount = float(info.get("positionAmt") or 0.0)
                if not amount:
                    continue
                name = plain(str(p.get("symbol")))
                wanted.setdefault(name, str(p.get("symbol")))
                liq = float(p.get("liquidationPrice") or 0.0)
                if liq <= 0:
                    doc["notes"].append(
                        f"{name}: the exchange gives no liquidation price (margin enough for any "
                        "move): left out"
                    )
                    continue
                doc["positions"].append(
                    {"symbol": name, "amount": amount, "entry": float(p.get("entryPrice") or 0),
                     "liquidation_price": liq}
                )  # fmt: skip
            if not wanted:
                raise BadInput(f"--profile {profile}: no open position; name one with --symbol")
            markets = {plain(m): m for m in client.markets}
            for name in wanted:
                unified = markets.get(name)
                if unified is None:
                    raise BadInput(f"--symbol: {name} is not listed by {exchange_id}")
                book = await client.fetch_order_book(unified, BOOK_LEVELS)
                doc["books"][name] = {"bids": book["bids"], "asks": book["asks"]}
                oi = await _open_interest(client, unified)
                if oi is None:
                    doc["notes"].append(
                        f"{name}: the exchange publishes no open interest here; assumed below"
                    )
                else:  # every long has a short: both sides add up to twice the figure
                    doc["crowd"][name] = {"open_interest": 2 * oi}
                    doc["notes"].append(
                        f"{name}: open interest {oi:g} from the exchange; the crowd's positions "
                        f"on both sides add up to {2 * oi:g}"
                    )
                weights, why = await _index_weights(client, unified)
                if weights is None:
                    doc["notes"].append(f"{name}: {why}; the index's weights are assumed")
                else:
                    doc["index_weights"][name] = weights
        finally:
            await conn.close()
    finally:
        log.close("risk stress")
    return doc


async def _open_interest(client: Any, symbol: str) -> float | None:
    """The public open interest in base units, or None where the venue has none."""
    try:
        got = await client.fetch_open_interest(symbol)
    except Exception:  # not published (or not by this venue): an assumption instead
        return None
    amount = got.get("openInterestAmount") if isinstance(got, dict) else None
    return float(amount) if amount else None


async def _index_weights(client: Any, symbol: str) -> tuple[list[float] | None, str]:
    """The weights of the index's constituents, in the order the exchange lists them, or
    None and why not."""
    if not hasattr(client.exchange, CONSTITUENTS):
        return None, "the exchange publishes no index constituents here"
    market_id = client.market(symbol)["id"]
    try:
        got = await client.call(CONSTITUENTS, {"symbol": market_id}, symbol=symbol)
    except (PermissionDenied, Interrupted):
        raise  # the profile's scope refused it, or Ctrl-C: the command's own error
    except Exception as exc:  # an exchange or network failure: an assumption instead
        return None, f"the index's constituents could not be read ({type(exc).__name__})"
    rows = got.get("constituents") if isinstance(got, dict) else None
    try:
        weights = [float(row["weight"]) for row in rows or []]
    except (KeyError, TypeError, ValueError):
        weights = []
    if not weights or min(weights) < 0 or sum(weights) <= 0:
        return None, "the exchange's index constituents carry no usable weights"
    return weights, ""
