"""What the risk pieces publish into each tick and the bot's status file (``extras.risk``).

risk.index         per symbol: reference price, health, reason, every source's status
risk.reduce_only   per symbol: why the bot is held reduce-only
risk.alerts        active alerts (index and monitors): code, sentence, since, trip
risk.liquidation   per position: mark, liquidation price (exchange and estimate), distance
risk.budget        the exchange's usage headers (weight, order counts) as last seen, and
                   the last limit change (tighten/recover/ban) with its reason
risk.rejections    the last pre-trade rejections (code and sentence) and how many checked
risk.monitor       figures the detectors track (funding vs volatility, mark-index bps...)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from perpbot.client.position_side import leg_symbol
from perpbot.events import Event, ExchangeCall
from perpbot.risk.margin import after_fill
from perpbot.risk.state import RiskState

if TYPE_CHECKING:
    from perpbot.risk.gate import RiskGate
    from perpbot.risk.watch import MonitorHub

HEADER_NAMES = {
    "x-mbx-used-weight-1m": "used_weight_1m",
    "x-mbx-order-count-10s": "order_count_10s",
    "x-mbx-order-count-1m": "order_count_1m",
}


class StatusFeed:
    def __init__(
        self,
        state: RiskState,
        *,
        gate: RiskGate | None = None,
        hub: MonitorHub | None = None,
        positions: Any = None,  # () -> {leg_key: engine PositionSnapshot}
        orders: Any = None,  # () -> [the bot's OpenOrder]
    ) -> None:
        self.state = state
        self.gate = gate
        self.hub = hub
        self.positions = positions or dict
        self.orders = orders or list
        self.budget: dict[str, Any] = {}

    def on_event(self, event: Event) -> None:
        if not isinstance(event, ExchangeCall) or not event.rate_headers:
            return
        for name, value in event.rate_headers.items():
            key = HEADER_NAMES.get(name.lower())
            if key is not None:
                try:
                    self.budget[key] = int(value)
                except ValueError:
                    continue
                self.budget["ts"] = event.ts

    def liquidation(self) -> dict[str, Any]:
        """Per position (hedge mode: per side, keyed ``SYMBOL|LONG``): the exchange's
        liquidation price, perpbot's estimate and the distance to it."""
        out: dict[str, Any] = {}
        now = time.time()
        prices = self.gate.prices() if self.gate is not None else {}
        for key, p in self.positions().items():
            if not p.amount:
                continue
            sym = leg_symbol(key)
            mark = p.mark_price or self.state.marks().get(sym)
            row: dict[str, Any] = {
                "amount": p.amount,
                "entry_price": p.entry_price,
                "mark_price": mark,
                "liquidation_price": p.liquidation_price,
                "estimate": None,
            }
            snap = self.gate.margin_snapshot(sym, prices, now) if self.gate is not None else None
            est = None
            if snap is not None:
                est = after_fill(
                    snap.account,
                    key,
                    0.0,
                    snap.mark,
                    mark=snap.mark,
                    leverage=snap.leverage,
                    brackets=snap.brackets,
                )
                row["estimate"] = est.liquidation_price
                row["brackets"] = est.brackets_source
            liq = row["liquidation_price"] or row["estimate"]
            if p.position_side and est is not None and est.distance is not None:
                # a hedge-mode side: liquidated with its symbol's other side (the estimate)
                row["distance_pct"] = round(est.distance * 100.0, 4)
            elif liq and mark:
                dist = (mark - liq) / mark if p.amount > 0 else (liq - mark) / mark
                row["distance_pct"] = round(dist * 100.0, 4)
            out[key] = row
        return out

    def extras(self) -> dict[str, Any]:
        s = self.state
        risk: dict[str, Any] = {
            "index": {sym: r.to_dict() for sym, r in s.index.items()},
            "reduce_only": dict(s.reduce_only),
            "alerts": [a.to_dict() for a in s.active_alerts()],
            "liquidation": self.liquidation(),
            "budget": {
                **self.budget,
                "last_limit_change": self.hub.last_limit_change if self.hub else None,
            },
            "orders": [
                {
                    "symbol": o.symbol,
                    "side": o.side,
                    "type": o.type,
                    "price": o.price,
                    "remaining": o.remaining,
                    "reduce_only": o.reduce_only,
                    "post_only": o.post_only,
                    "client_order_id": o.client_order_id,
                }
                for o in self.orders()
            ],
            "rejections": list(s.rejections)[-5:],
            "checked": s.checked,
        }
        if self.hub is not None:
            risk["monitor"] = self.hub.figures()
        return {"risk": risk}
