"""Fills the run's own answers reported that its position view may not include yet.

A placement's answer (a market order filled at once, a limit order that crossed) or a
cancel's answer (an order that filled before it went) tells the run of fills before its
position view learns of them: on streams from the ACCOUNT_UPDATE that follows them on the
user stream, on polling from the next reconcile's read. Until then the filled order has
left the view's open orders and its fill is not in the positions, so an order judged
meanwhile was judged against the position from before the fill: a second market buy
passed ``max_position_notional`` (the first one's fill counted nowhere), a take-profit
placed right after its entry was refused as having nothing to reduce.

So the run settles its view before it places an order while such fills are outstanding
(``perpbot.app.lifecycle``: on streams it waits until the user stream has delivered them
and the position update that follows, else it reads REST), and ``ctx.refresh()`` waits for
exactly these. Only answers count here: a fill the stream or a reconcile told first comes
with its own position update.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from perpbot.client.validate import plain_number


@dataclass(slots=True)
class UnsettledFills:
    # client id -> cumulative filled amount an answer reported that the position view may
    # not include yet; and how much of each order's fills the view is known to include
    pending: dict[str, float] = field(default_factory=dict)
    settled: dict[str, float] = field(default_factory=dict)

    def note(self, client_id: str | None, order: dict[str, Any] | None) -> None:
        """An answer about one of the run's orders (its placement, its cancel)."""
        filled = plain_number((order or {}).get("filled"))
        if client_id and filled and filled > self.settled.get(client_id, 0.0) + 1e-12:
            self.pending[client_id] = max(self.pending.get(client_id, 0.0), filled)

    def settle(self, included: dict[str, float]) -> None:
        """The position view now includes ``included``: a copy of ``pending`` taken before
        the read that settled it (what answers told after the read started stays)."""
        for cid, filled in included.items():
            self.settled[cid] = max(self.settled.get(cid, 0.0), filled)
            if self.pending.get(cid, 0.0) <= self.settled[cid] + 1e-12:
                self.pending.pop(cid, None)
