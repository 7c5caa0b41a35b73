"""RiskState: what the risk pieces of one bot share.

The gate (a pipeline layer) judges orders with it; the index basket writes the reference
prices and health into it; the monitors write alerts and book snapshots; the publisher reads
all of it for the status file. One object, owned by the gate and found by the others through
``pipeline.layer("risk").state``, so no piece reaches into another.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from perpbot.config import StrategyFile
from perpbot.risk.margin import Brackets

if TYPE_CHECKING:
    from perpbot.risk.index import IndexReading

ALL = "*"  # key of a bot-wide reduce-only reason


@dataclass
class ActiveAlert:
    key: str
    layer: str
    code: str
    sentence: str
    since: float
    last: float
    trip: bool = False
    data: dict[str, Any] = field(default_factory=dict)
    ttl_s: float | None = None  # dropped when not seen again for this long (None: explicit)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BookSnapshot:
    ts: float
    bids: list[list[float]]
    asks: list[list[float]]

    @property
    def mid(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0][0] + self.asks[0][0]) / 2.0


class RiskState:
    def __init__(
        self,
        config: StrategyFile,
        *,
        marks: Callable[[], Mapping[str, float]] = dict,
    ) -> None:
        self.config = config
        self._marks = marks
        self.index: dict[str, IndexReading] = {}
        self.reduce_only: dict[str, str] = {}  # symbol (or ALL) -> why
        self.brackets: dict[str, Brackets] = {}
        self.leverage: dict[str, float] = {}
        self.margin_mode: dict[str, str] = {}
        self.books: dict[str, BookSnapshot] = {}
        # symbol -> what the bot itself last asked for: {"at", "leverage", "margin_mode"}
        self.own_requests: dict[str, dict[str, Any]] = {}
        self.alerts: dict[str, ActiveAlert] = {}
        self.premium: dict[str, tuple[float, dict[str, Any]]] = {}  # last fetch_funding_rate
        self.rejections: deque[dict[str, Any]] = deque(maxlen=20)
        self.checked = 0

    # -- prices -------------------------------------------------------------------------------
    def marks(self) -> Mapping[str, float]:
        try:
            return self._marks()
        except Exception:
            return {}

    def index_price(self, symbol: str) -> tuple[float | None, str | None]:
        """The healthy index price, or (None, why there is none)."""
        reading = self.index.get(symbol)
        if reading is None:
            return None, "no index reading yet"
        if not reading.healthy or reading.price is None:
            return None, reading.reason
        return reading.price, None

    def reference(self, symbol: str) -> float | None:
        """The price exposure is valued at: the healthy index, else the last mark."""
        price, _ = self.index_price(symbol)
        return price if price is not None else self.marks().get(symbol)

    # -- reduce-only --------------------------------------------------------------------------
    def reduce_only_reason(self, symbol: str) -> str | None:
        return self.reduce_only.get(symbol) or self.reduce_only.get(ALL)

    def hold_reduce_only(self, symbol: str, reason: str) -> None:
        self.reduce_only[symbol] = reason

    def release_reduce_only(self, symbol: str) -> None:
        self.reduce_only.pop(symbol, None)

    # -- alerts -------------------------------------------------------------------------------
    def raise_alert(
        self,
        key: str,
        layer: str,
        code: str,
        sentence: str,
        *,
        trip: bool = False,
        data: dict[str, Any] | None = None,
        ttl_s: float | None = None,
        now: float | None = None,
    ) -> bool:
        """Record an alert; True when it is new (not already active), i.e. worth publishing."""
        now = time.time() if now is None else now
        current = self.alerts.get(key)
        if current is not None:
            current.last, current.sentence = now, sentence
            current.data = data or current.data
            return False
        alert = ActiveAlert(key, layer, code, sentence, now, now, trip, data or {}, ttl_s)
        self.alerts[key] = alert
        return True

    def clear_alert(self, key: str) -> ActiveAlert | None:
        return self.alerts.pop(key, None)

    def expire_alerts(self, now: float | None = None) -> None:
        """Drop alerts not seen again within their detector's cooldown."""
        now = time.time() if now is None else now
        for key, a in list(self.alerts.items()):
            if a.ttl_s is not None and now - a.last > a.ttl_s:
                del self.alerts[key]

    def active_alerts(self) -> list[ActiveAlert]:
        return sorted(self.alerts.values(), key=lambda a: a.since)
