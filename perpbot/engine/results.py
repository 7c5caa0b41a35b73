"""Typed results and events a strategy receives: plain data, built from plain dicts.

Every type is made from the plain dict that crossed the strategy boundary (the same dict in
process and in thread isolation), so nothing here holds a connection or the engine.
``raw`` is the ccxt dict as the engine received it, for power users; ``order["id"]`` and
``order.get("status")`` read ``raw`` too, so strategies written against the ccxt dicts of
earlier versions keep working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def _f(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None


class RawAccess:
    """``result["key"]`` / ``result.get("key")`` / ``"key" in result`` read ``raw``."""

    raw: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.raw.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self.raw


@dataclass(frozen=True, slots=True, kw_only=True)
class Order(RawAccess):
    """An order of this run (``limit_order``, ``open_orders``, ``on_order_update``)."""

    id: str | None
    client_order_id: str | None
    symbol: str
    side: str
    type: str | None
    amount: float | None
    price: float | None
    filled: float
    status: str
    reduce_only: bool
    post_only: bool
    time_in_force: str | None
    # the priceMatch it was sent with (OPPONENT_5...; None: a price); ``price`` is the one
    # the book gave it at entry
    price_match: str | None = None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Order:
        info = raw.get("info") or {}
        match = info.get("priceMatch") if isinstance(info, dict) else None
        return cls(
            id=None if raw.get("id") is None else str(raw.get("id")),
            client_order_id=raw.get("clientOrderId"),
            symbol=str(raw.get("symbol")),
            side=str(raw.get("side")),
            type=raw.get("type"),
            amount=_f(raw.get("amount")),
            price=_f(raw.get("price")),
            filled=_f(raw.get("filled")) or 0.0,
            status=str(raw.get("status") or "open"),
            reduce_only=bool(raw.get("reduceOnly") or info.get("reduceOnly") in (True, "true")),
            post_only=bool(raw.get("postOnly")),
            time_in_force=raw.get("timeInForce"),
            price_match=match if isinstance(match, str) and match != "NONE" else None,
            raw=raw,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill(RawAccess):
    """One trade of this run's orders (``on_fill``): what the ledger recorded."""

    ts: float
    symbol: str
    side: str
    price: float
    amount: float
    cost: float
    fee: float
    fee_currency: str | None
    maker: bool | None
    order_id: str | None
    client_order_id: str | None
    trade_id: str
    realized_pnl: float
    intent: str | None
    decided_price: float | None
    slippage_bps: float | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Fill:
        names = {n for n in cls.__dataclass_fields__ if n != "raw"}
        return cls(**{k: v for k, v in raw.items() if k in names}, raw=raw)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ticker(RawAccess):
    symbol: str
    last: float | None
    bid: float | None
    ask: float | None
    timestamp: float | None  # epoch seconds
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Ticker:
        ts = raw.get("timestamp")
        return cls(
            symbol=str(raw.get("symbol")),
            last=_f(raw.get("last")),
            bid=_f(raw.get("bid")),
            ask=_f(raw.get("ask")),
            timestamp=ts / 1000.0 if ts else None,
            raw=raw,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Book(RawAccess):
    """An order book: ``bids`` best first (highest), ``asks`` best first (lowest)."""

    symbol: str
    bids: list[tuple[float, float]]
    asks: list[tuple[float, float]]
    timestamp: float | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def mid(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0][0] + self.asks[0][0]) / 2.0

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Book:
        ts = raw.get("timestamp")
        return cls(
            symbol=str(raw.get("symbol")),
            bids=[(float(p), float(a)) for p, a, *_ in raw.get("bids") or []],
            asks=[(float(p), float(a)) for p, a, *_ in raw.get("asks") or []],
            timestamp=ts / 1000.0 if ts else None,
            raw=raw,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderUpdate:
    """``on_order_update``: an order of this run changed state.

    ``status``: accepted, partially_filled, filled, cancelled, expired or rejected; ``code``
    (ORDER_ACCEPTED, or ORDER_ADOPTED for an earlier run's order taken over at start, or
    ORDER_TRIGGERED for the order a conditional order of the run placed when it fired, ...
    ORDER_REJECTED, or the refusal's own code such as RISK_MAX_NOTIONAL)
    and ``sentence`` say why, as the signed log does. ``order`` is None for an order refused
    before the exchange saw it."""

    status: str
    code: str
    sentence: str
    client_order_id: str | None
    symbol: str | None
    order: Order | None

    @classmethod
    def of(cls, d: dict[str, Any]) -> OrderUpdate:
        raw = d.get("order")
        return cls(
            status=d["status"],
            code=d["code"],
            sentence=d["sentence"],
            client_order_id=d.get("client_order_id"),
            symbol=d.get("symbol"),
            order=Order.of(raw) if raw else None,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionChange:
    """``on_position_change``: the signed amount of ``symbol`` moved from ``before`` to
    ``after`` (both as of the engine's bookkeeping). On a hedge-mode account each side
    has its own changes (``position_side`` LONG or SHORT) besides the net's (None)."""

    symbol: str
    before: float
    after: float
    entry_price: float | None
    liquidation_price: float | None
    position_side: str | None = None

    @classmethod
    def of(cls, d: dict[str, Any]) -> PositionChange:
        return cls(
            symbol=d["symbol"],
            before=float(d["before"]),
            after=float(d["after"]),
            entry_price=_f(d.get("entry_price")),
            liquidation_price=_f(d.get("liquidation_price")),
            position_side=d.get("position_side"),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class KillChange:
    """``on_kill``: the kill switch now stands for this run (``standing``) or was cleared.
    ``level``/``code``/``reason`` describe the entry that stands (None when cleared)."""

    standing: bool
    level: str | None
    code: str | None
    reason: str | None

    @classmethod
    def of(cls, d: dict[str, Any] | None) -> KillChange:
        d = d or {}
        return cls(
            standing=bool(d),
            level=d.get("level"),
            code=d.get("code"),
            reason=d.get("reason"),
        )
