"""The stress plot: where the crowd's liquidations sit, and the mark's path per shock.

Left panel ``Liquidation clusters <symbol>``: the crowd's size liquidating at each price
(longs below the price, shorts above), this account's liquidation prices and the shocked
prices as lines. Right panel ``Mark after the shock <symbol>``: the predicted mark over
time for each shock, this account's liquidation prices, and a dot where a position of this
account is liquidated. matplotlib is an optional extra (``perpbot[report]``), imported only
when a plot is asked for; object API only (no pyplot, no global state).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from perpbot.errors import RuntimeFailure
from perpbot.fsutil import atomic_write_bytes
from perpbot.stress.cascade import Node, Outcome

TITLE_CLUSTERS = "Liquidation clusters"
TITLE_PATH = "Mark after the shock"


def write_png(result: dict[str, Any], path: Path) -> None:
    """Draw the plot of ``explain.run``'s result and write it to ``path`` atomically."""
    try:
        import matplotlib  # lazy: an optional extra (perpbot[report]), loaded to draw
    except ImportError:
        hint = "the stress plot needs matplotlib: pip install 'perpbot[report]'"
        raise RuntimeFailure(hint) from None

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # lazy: the optional extra, after use("Agg")

    nodes: list[Node] = result["_nodes"]
    outcomes: list[Outcome] = result["_outcomes"]
    symbol = result["inputs"]["shock_symbol"]
    start = outcomes[0].start[symbol] if outcomes else 0.0
    fig = Figure(figsize=(12, 5), dpi=100, layout="constrained")
    left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 2]})
    mine = [n for n in nodes if n.account and n.symbol == symbol]

    crowd = [n for n in nodes if not n.account and n.symbol == symbol]
    for side, colour in (("long", "#c0392b"), ("short", "#27ae60")):
        pts = [n for n in crowd if n.side == side]
        if pts:
            height = start * 0.0004
            left.barh(
                [n.price for n in pts],
                [n.qty for n in pts],
                height=height,
                color=colour,
                label=f"crowd {side}s liquidated here",
            )
    for n in mine:
        left.axhline(n.price, color="#2c3e50", linestyle="--", linewidth=1)
    for o in outcomes:
        left.axhline(o.path[symbol][1][1], color="#7f8c8d", linestyle=":", linewidth=0.8)
    left.set_title(f"{TITLE_CLUSTERS} {symbol}", fontsize=10)
    left.set_xlabel("size liquidated (base)")
    left.set_ylabel("price")
    left.legend(fontsize=8, loc="best")

    for o in outcomes:
        trace = o.path[symbol]
        right.step(
            [t for t, _ in trace], [m for _, m in trace], where="post", label=f"{o.shock_pct:+g}%"
        )
        for r in o.liquidations:
            if nodes[r.node].account and nodes[r.node].symbol == symbol:
                right.plot([r.time_s], [r.mark], "o", color="#2c3e50")
    for n in mine:
        right.axhline(
            n.price,
            color="#2c3e50",
            linestyle="--",
            linewidth=1,
            label=f"your liquidation {n.price:,.6g}",
        )
    last = max((r.time_s for o in outcomes for r in o.liquidations), default=0.0)
    right.set_xlim(-0.5, last + max(3.0, 0.2 * last))
    right.set_title(f"{TITLE_PATH} {symbol}", fontsize=10)
    right.set_xlabel("seconds after the shock")
    right.set_ylabel("mark price")
    right.legend(fontsize=8, loc="best", ncol=2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(path, buf.getvalue())
