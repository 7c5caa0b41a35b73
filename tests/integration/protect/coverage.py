"""Was a position ever without a stop? Read from the simulator's algo orders (its own state).

Every STOP_MARKET of the account (closePosition or reduce-only) stood from its ``createTime``
until its ``updateTime`` when it is no longer NEW (cancelled, fired, expired). The position
was uncovered at a moment no stop stood: a gap between one stop's end and the next stop's
creation. Timestamps are the simulator's milliseconds: a stop created in the same millisecond
the last one ended counts as covering (the journal order says which came first).
"""

from __future__ import annotations

import math
from typing import Any


def stop_gaps(algos: list[dict[str, Any]], position_side: str = "BOTH") -> list[tuple[int, int]]:
    """The (from, to) milliseconds during which no STOP_MARKET of ``position_side`` stood,
    between the first one's creation and now."""
    stops = sorted(
        (
            a["createTime"],
            a["updateTime"] if a["algoStatus"] != "NEW" else math.inf,
        )
        for a in algos
        if a["orderType"] == "STOP_MARKET" and a["positionSide"] == position_side
    )
    gaps: list[tuple[int, int]] = []
    covered_until = stops[0][1] if stops else math.inf
    for created, ended in stops[1:]:
        if created > covered_until:
            gaps.append((int(covered_until), created))
        covered_until = max(covered_until, ended)
    if covered_until != math.inf:
        gaps.append((int(covered_until), -1))  # none stands now
    return gaps
