"""Fills of orders this run did not place, each said once: a liquidation, an ADL, another
client's order.

The ledger books only this run's own orders (perpbot.engine.ledger), so a fill of any other
order on one of the run's symbols changes the account's position without a word from the
ledger. Binance names the orders it places itself by ``clientOrderId``: ``autoclose-...``
a liquidation, ``adl_autoclose...`` an auto-deleveraging (ADL) close; any other id is a
manual order or another program's (``pb-...`` another perpbot run, ``pbk-...`` ``perpbot
kill --direct`` or ``perpbot flatten``). Each such fill is one Decision (layer ``engine``,
action ``warn``: the run prints it on stderr; the signed log, ``events.jsonl``, the alerts
and ``perpbot status`` carry it), once per trade id whichever of the user stream and the
REST reconcile meets it first:

    FILL_LIQUIDATION   the exchange liquidated the position
    FILL_ADL           the exchange auto-deleveraged it (closed against a liquidated trader)
    FILL_FOREIGN       an order the run did not place (a manual order, another program's)

A fill of an order carrying this run's client-id prefix is the run's own (a placement whose
answer is not back yet, a triggered stop) and is never said here. On a shared (account,
symbol) (``[strategy] share_symbols``) the other holders' fills are the normal business of
the account: FILL_FOREIGN is not said there (docs/streams.md), liquidations and ADLs are.

The user stream's ``ORDER_TRADE_UPDATE`` carries the order's ``clientOrderId``; REST's
``userTrades`` do not, so the reconcile looks the order up once (``GET /fapi/v1/order``,
weight 1) unless the stream already told it (``remember``). A lookup that keeps failing is
tried at each reconcile until ``LOOKUP_TRIES`` have failed over ``LOOKUP_GIVE_UP_S``, and not
again once the exchange answers that the order does not exist (-2013). The account's
liquidation and ADL orders are then read once (``GET /fapi/v1/forceOrders``, weight 20): an
order listed there is said by its client id like any other; else the fill is said as
FILL_FOREIGN with the client id ``UNKNOWN_CLIENT_ID`` (userTrades themselves tell nothing
that marks a liquidation's fill) (perpbot.engine.reconcile).

The order a conditional order of this run places when it fires (a stop, a take-profit, the
[protect] keeper's closePosition stop) carries the algo order's client id: it is the run's
own and booked in the ledger (``Ledger.triggered``), never said here.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from perpbot.client.orders import perpbot_strategy_tag
from perpbot.events import Decision, EventBus

Kind = Literal["liquidation", "adl", "foreign"]
CODES: dict[Kind, str] = {
    "liquidation": "FILL_LIQUIDATION",
    "adl": "FILL_ADL",
    "foreign": "FILL_FOREIGN",
}
FILLED_EXECUTIONS = ("TRADE", "CALCULATED")  # ORDER_TRADE_UPDATE x: a fill, a liquidation's
# the client id of a REST fill whose order no lookup could name (the exchange says it does not
# exist, or the lookups kept failing: perpbot.engine.reconcile.LOOKUP_TRIES)
UNKNOWN_CLIENT_ID = "client id unknown"


def kind_of(client_id: str) -> Kind:
    """What placed an order the run did not place, by its client id (Binance's names)."""
    if client_id.startswith("autoclose-"):
        return "liquidation"
    if client_id.startswith("adl_autoclose"):
        return "adl"
    return "foreign"


def origin_of(client_id: str, strategy_tag: str) -> str:
    """Who placed a foreign order, as far as its client id tells."""
    if client_id == UNKNOWN_CLIENT_ID:
        return (
            "the exchange would not name the order: a liquidation, an ADL, a manual order or "
            "another program's"
        )
    if client_id.startswith("pbk-flatten-"):  # perpbot.kill.ops.client_ops
        return "a `perpbot flatten` order"
    if client_id.startswith("pbk-"):
        return "a `perpbot kill --direct` order"
    tag = perpbot_strategy_tag(client_id)
    if tag == strategy_tag:
        return "an order of an earlier run of this strategy"
    if tag is not None:
        return "another perpbot bot's order"
    return "a manual order or another program's"


def trade_of_update(o: dict[str, Any]) -> dict[str, Any] | None:
    """The fill an ``ORDER_TRADE_UPDATE`` tells (ccxt's order, its ``info`` the raw ``o``),
    as a ccxt-like trade; None when it tells none. ccxt's ``watch_my_trades`` leaves out a
    liquidation's fills (execution ``CALCULATED``): only the order update carries them."""
    info = o.get("info") or {}
    if info.get("x") not in FILLED_EXECUTIONS or not info.get("t"):
        return None
    try:
        amount, price = float(info.get("l") or 0.0), float(info.get("L") or 0.0)
    except (TypeError, ValueError):
        return None
    if amount <= 0:
        return None
    return {
        "id": str(info["t"]),
        "order": str(info.get("i") or o.get("id")),
        "symbol": o.get("symbol"),
        "side": str(info.get("S") or o.get("side") or "").lower(),
        "price": price,
        "amount": amount,
        "timestamp": info.get("T"),
        "info": info,
    }


@dataclass(slots=True, kw_only=True)
class UnplacedFills:
    bus: EventBus
    mine: Callable[[str], bool]  # a client id this run placed (its prefix, adopted orders)
    strategy_tag: str
    shared: bool = False  # [strategy] share_symbols: other holders' fills are expected
    said: set[str] = field(default_factory=set)  # trade ids said
    client_ids: dict[str, str] = field(default_factory=dict)  # order id -> client id
    counts: Counter[str] = field(default_factory=Counter)
    recent: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=10))
    # a shared run: symbol -> the time (ms) of the latest liquidation or ADL fill said there,
    # until a position read of the account after it settles the run's own book (Reconciler)
    closed: dict[str, int] = field(default_factory=dict)
    others: int = 0  # a shared run: the other holders' fills met (not said)
    started_ms: int | None = None  # the run's start (exchange clock): fills before it are
    # an earlier run's, met by the restart's look back (Reconciler.lookback_ms)

    def remember(self, order_id: Any, client_id: Any) -> None:
        """The stream told an order's client id: REST need not look it up."""
        if order_id is not None and client_id:
            self.client_ids[str(order_id)] = str(client_id)

    def note(self, symbol: str, trade: dict[str, Any], client_id: str, source: str) -> bool:
        """Say one fill of an order the run did not place (ccxt-like ``trade``); False when
        it was said already or is not said (the run's own; on a shared account another
        holder's, only counted)."""
        tid = str(trade.get("id"))
        if tid in self.said or self.mine(client_id):
            return False
        self.said.add(tid)
        kind = kind_of(client_id)
        if self.shared and kind == "foreign":  # another holder's: the account's business
            self.others += 1
            return False
        if self.shared:
            when = int(trade.get("timestamp") or 0)
            self.closed[symbol] = max(self.closed.get(symbol, 0), when)
        code = CODES[kind]
        data = {
            "symbol": symbol,
            "kind": kind,
            "side": str(trade.get("side") or "?"),
            "amount": float(trade.get("amount") or 0.0),
            "price": float(trade.get("price") or 0.0),
            "order_id": str(trade.get("order")),
            "client_order_id": client_id,
            "trade_id": tid,
            "time_ms": trade.get("timestamp"),
            "source": source,
        }
        sentence = self.sentence(data)
        self.counts[code] += 1
        decision = Decision("engine", "warn", code, sentence, data)
        self.recent.append({"ts": decision.ts, "code": code, "sentence": sentence})
        self.bus.publish(decision)
        return True

    def sentence(self, fill: dict[str, Any]) -> str:
        """What a trader reads about one fill the run did not place (``note``'s data)."""
        symbol, cid, oid = fill["symbol"], fill["client_order_id"], fill["order_id"]
        kind = fill["kind"]
        did = "bought" if fill["side"] == "buy" else "sold"
        did += f" {fill['amount']:g} at {fill['price']:g} (trade {fill['trade_id']})"
        at = fill.get("time_ms")
        if self.started_ms is not None and at and int(at) < self.started_ms:
            did += ", before this run started, while no run of this strategy watched"
        follows = "the run's position follows the exchange's"
        if self.shared:
            follows = (
                "the account's position (shared, [strategy] share_symbols) changed: this "
                "run's own position is set flat once the exchange shows the account holding "
                "none of it, else still counted from its own fills"
            )
        if kind == "liquidation":
            return (
                f"{symbol}: the exchange LIQUIDATED the position: its liquidation order {oid} "
                f"({cid}) {did}; {follows}"
            )
        if kind == "adl":
            return (
                f"{symbol}: the exchange auto-deleveraged (ADL) the position, closing it "
                f"against a liquidated trader: its order {oid} ({cid}) {did}; {follows}"
            )
        return (
            f"{symbol}: a fill the run did not place: order {oid} ({cid}, "
            f"{origin_of(cid, self.strategy_tag)}) {did}; {follows}"
        )

    def status(self) -> dict[str, Any]:
        """The ``unplaced`` section of the status snapshot."""
        section: dict[str, Any] = {"counts": dict(self.counts), "recent": list(self.recent)}
        if self.shared:
            section["others"] = self.others
        return {"unplaced": section}
