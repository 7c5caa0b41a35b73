"""A stress result in words a trader reads, as a dict (``--json``) and as a rich table.

For each shock: where the cascade starts (the first liquidation cluster the shock reaches),
how far it goes (rounds, seconds, size liquidated, how far the mark goes beyond the shock),
when each of this account's positions is liquidated and how long the bot has to act at its
latency, and the risk of auto-deleveraging (ADL): liquidations that fill past their
bankruptcy price cost the insurance fund; what the fund cannot pay is taken from the most
profitable, most leveraged positions on the other side.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

from perpbot.stress.cascade import Node, Outcome, build_nodes, propagate
from perpbot.stress.inputs import Scenario
from perpbot.stress.ranges import DEPTH_NOISE, Reach, depth_range, position_range


def run(scenario: Scenario) -> dict[str, Any]:
    """Every shock of the scenario, explained; also the raw outcomes for the figure."""
    nodes = build_nodes(scenario)
    outcomes = [propagate(scenario, nodes, shock) for shock in scenario.shocks]
    return {
        "inputs": describe_inputs(scenario),
        "assumptions": list(scenario.assumptions),
        "shocks": [explain(scenario, nodes, o) for o in outcomes],
        "_outcomes": outcomes,
        "_nodes": nodes,
    }


def public(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON-able part of ``run``'s result."""
    return {k: v for k, v in result.items() if not k.startswith("_")}


def describe_inputs(scenario: Scenario) -> dict[str, Any]:
    return {
        "shock_symbol": scenario.shock_symbol,
        "latency_ms": round(scenario.latency_s * 1000),
        "positions": [
            {
                "symbol": p.symbol,
                "amount": p.amount,
                "entry": p.entry,
                "liquidation_price": round(p.liq_price, 8),
            }
            for p in scenario.positions
        ],
        "books": {
            s: {
                "mid": b.mid,
                "levels": len(b.bids) + len(b.asks),
                "bid_depth": sum(q for _, q in b.bids),
                "ask_depth": sum(q for _, q in b.asks),
            }
            for s, b in scenario.books.items()
        },
        "crowd": {
            s: {
                "open_interest": c.open_interest,
                "long_share": c.long_share,
                "leverage_median": c.leverage_median,
                "leverage_sigma": c.leverage_sigma,
                "mmr": c.mmr,
                "position_size": c.position_size,
            }
            for s, c in scenario.crowd.items()
        },
        "correlations": {f"{a}/{b}": r for (a, b), r in scenario.correlations.items()},
        "mark_sources_s": list(scenario.dynamics.mark_sources_s),
        "mark_source_weights": {
            s: list(scenario.dynamics.source_weights(s)) for s in scenario.books
        },
    }


def explain(scenario: Scenario, nodes: list[Node], out: Outcome) -> dict[str, Any]:
    origin = out.shock_symbol
    down = out.shock_pct < 0
    crowd = [r for r in out.liquidations if not nodes[r.node].account]
    first = crowd[0] if crowd else None
    per_symbol: dict[str, dict[str, Any]] = {}
    for sym, start in out.start.items():
        recs = [r for r in crowd if r.symbol == sym]
        qty = sum(nodes[r.node].qty for r in recs)
        shocked = out.path[sym][1][1]
        marks = [m for _, m in out.path[sym]]
        extreme = min(marks) if shocked <= start else max(marks)
        per_symbol[sym] = {
            "clusters": len(recs),
            "qty": round(qty, 8),
            "notional": round(sum(nodes[r.node].qty * r.fill for r in recs), 2),
            "shocked_mark": round(shocked, 8),
            "extreme_mark": round(extreme, 8),
            "beyond_shock_pct": round(abs(extreme - shocked) / start * 100, 4),
            "adl": adl(scenario, nodes, out, sym),
        }
    span, thin, deep = depth_range(scenario, nodes, out)
    positions = [_position(scenario, nodes, out, n, (thin, deep)) for n in nodes if n.account]
    doc: dict[str, Any] = {
        "shock_pct": out.shock_pct,
        "symbol": origin,
        "starts": None,
        "rounds": max((r.hop for r in out.liquidations), default=0),
        "duration_s": round(max((r.time_s for r in out.liquidations), default=0.0), 3),
        "symbols": per_symbol,
        "positions": positions,
        "edges": len(out.edges),
        "range": span,
    }
    if first is not None:
        n = nodes[first.node]
        wave = [r for r in crowd if r.time_s == first.time_s and r.symbol == n.symbol]
        levs = [nodes[r.node].leverage for r in wave]
        doc["starts"] = {
            "symbol": n.symbol,
            "side": n.side,
            "price": round(n.price, 8),
            "through": round(nodes[wave[-1].node].price, 8),
            "qty": round(sum(nodes[r.node].qty for r in wave), 8),
            "leverage_range": [round(min(levs), 1), round(max(levs), 1)],
            "time_s": first.time_s,
        }
    doc["summary"] = _summary(doc, down)
    return doc


def _position(
    scenario: Scenario, nodes: list[Node], out: Outcome, n: Node, books: tuple[Reach, Reach]
) -> dict[str, Any]:
    rec = next((r for r in out.liquidations if r.node == n.id), None)
    marks = [m for _, m in out.path[n.symbol]]
    nearest = min(marks) if n.side == "long" else max(marks)
    gap_pct = abs(nearest - n.price) / out.start[n.symbol] * 100
    amount = n.qty if n.side == "long" else -n.qty
    doc: dict[str, Any] = {
        "symbol": n.symbol,
        "amount": amount,
        "liquidation_price": round(n.price, 8),
        "liquidated": rec is not None,
        "time_to_liquidation_s": None if rec is None else round(rec.time_s, 3),
        "time_to_act_s": None if rec is None else round(rec.time_s - scenario.latency_s, 3),
        "closest_mark": round(nearest, 8),
        "time_to_liquidation_range_s": position_range(*books, n.id),
    }
    side = "long" if amount > 0 else "short"
    what = f"your {side} {abs(amount):g} {n.symbol} (liquidation {n.price:,.6g})"
    if rec is None:
        doc["verdict"] = "safe"
        doc["sentence"] = (
            f"{what} is not reached: the mark comes no closer than {gap_pct:.2f}% of the price"
        )
    elif rec.time_s <= scenario.latency_s:
        doc["verdict"] = "too late"
        doc["sentence"] = (
            f"{what} is liquidated {rec.time_s:.1f} s after the shock, within your bot's "
            f"{scenario.latency_s * 1000:.0f} ms latency: it cannot act in time, only a "
            "smaller position or a stop already resting at the exchange helps"
        )
    else:
        doc["verdict"] = "act"
        doc["sentence"] = (
            f"{what} is liquidated {rec.time_s:.1f} s after the shock; at "
            f"{scenario.latency_s * 1000:.0f} ms latency your bot has "
            f"{rec.time_s - scenario.latency_s:.1f} s to reduce it"
        )
    thick_s, thin_s = doc["time_to_liquidation_range_s"]
    if (thick_s is None) != (thin_s is None):  # liquidated on one book and not the other
        which, when = ("thinner", thin_s) if thin_s is not None else ("thicker", thick_s)
        doc["undecided"] = True
        doc["sentence"] += (
            f" (undecided: on the book {DEPTH_NOISE:.0%} {which} it is liquidated "
            f"{when:.1f} s after the shock, on the other it is not)"
        )
    return doc


def adl(scenario: Scenario, nodes: list[Node], out: Outcome, symbol: str) -> dict[str, Any]:
    """Bankruptcy losses of the liquidations in ``symbol`` and who would be deleveraged."""
    loss = 0.0
    sides = set()
    for r in out.liquidations:
        n = nodes[r.node]
        if n.symbol != symbol or n.account:
            continue
        sides.add(n.side)
        past = (n.bankruptcy - r.fill) if n.side == "long" else (r.fill - n.bankruptcy)
        loss += max(0.0, past) * n.qty
    fund = scenario.dynamics.insurance_fund
    if loss <= 0:
        risk, text = "none", "every liquidation fills before its bankruptcy price: no ADL"
    elif fund is None:
        risk = "possible"
        text = (
            f"liquidations fill past bankruptcy for {loss:,.0f} (quote) of losses; ADL follows "
            "if the insurance fund cannot pay them (fund size unknown: set "
            "dynamics.insurance_fund)"
        )
    elif loss > fund:
        risk = "high"
        text = f"bankruptcy losses {loss:,.0f} exceed the insurance fund {fund:,.0f}: ADL"
    else:
        risk = "low"
        text = f"bankruptcy losses {loss:,.0f} are within the insurance fund {fund:,.0f}"
    doc: dict[str, Any] = {"bankruptcy_loss": round(loss, 2), "risk": risk, "sentence": text}
    if risk != "none":
        doc["your_queue"] = _queue(scenario, nodes, out, symbol, sides)
    return doc


def _queue(
    scenario: Scenario, nodes: list[Node], out: Outcome, symbol: str, liquidated: set[str]
) -> list[dict[str, Any]]:
    """Where this account's winning positions stand in the ADL queue: Binance ranks by
    profit on margin x effective leverage; the crowd's winners at leverage L score about
    move x L^2, so the share ahead follows from the leverage distribution."""
    crowd = scenario.crowd[symbol]
    start = out.start[symbol]
    final = out.final_mark[symbol]
    move = abs(final - start) / start
    rows = []
    for n in nodes:
        if not n.account or n.symbol != symbol or n.side in liquidated or move <= 0:
            continue
        sign = 1.0 if n.side == "long" else -1.0
        entry = next(p.entry for p in scenario.positions if p.symbol == symbol)
        pnl = sign * (final - entry) / entry * n.leverage
        if pnl <= 0:
            continue
        score = pnl * n.leverage
        lev_equal = math.sqrt(score / move)  # a crowd winner scoring the same
        sigma = max(crowd.leverage_sigma, 1e-9)
        ahead = 1.0 - NormalDist().cdf(math.log(lev_equal / crowd.leverage_median) / sigma)
        rows.append(
            {
                "amount": n.qty * sign,
                "score": round(score, 4),
                "share_ranked_ahead": round(ahead, 4),
                "sentence": (
                    f"your {n.side} {n.qty:g} {symbol} profits from the cascade; in an ADL "
                    f"{ahead:.0%} of the winning side ranks ahead of it"
                ),
            }
        )
    return rows


def _summary(doc: dict[str, Any], down: bool) -> str:
    sym = doc["symbol"]
    head = f"shock {doc['shock_pct']:+g}% on {sym}"
    if doc["starts"] is None:
        return f"{head}: reaches no liquidation cluster, no cascade"
    s = doc["starts"]
    where = "at once" if s["time_s"] == 0 else f"after {s['time_s']:.1f} s"
    side = "longs" if s["side"] == "long" else "shorts"
    me = doc["symbols"][sym]
    lo, hi = s["leverage_range"]
    text = (
        f"{head}: the cascade starts {where}: {s['qty']:.4g} {s['symbol']} of {side} at "
        f"{lo:.0f}-{hi:.0f}x liquidate between {s['price']:,.6g} and {s['through']:,.6g}; "
        f"it runs {doc['rounds']} round(s) "
        f"over {doc['duration_s']:.1f} s, liquidates {me['qty']:.4g} {sym} "
        f"({me['notional']:,.0f} quote) and takes the mark {me['beyond_shock_pct']:.2f}% "
        f"further {'down' if down else 'up'} (to {me['extreme_mark']:,.6g})"
    )
    others = [
        f"{k} {v['beyond_shock_pct']:.2f}%"
        for k, v in doc["symbols"].items()
        if k != sym and v["clusters"]
    ]
    if others:
        text += "; through correlation it spreads to " + ", ".join(others)
    return text


def lines(result: dict[str, Any]) -> list[str]:
    """The plain-text explanation (under the table)."""
    out = []
    for shock in result["shocks"]:
        out.append(shock["summary"])
        if shock["range"]["borderline"]:
            out.append(f"  {shock['range']['sentence']}")
        out.extend(f"  {p['sentence']}" for p in shock["positions"])
        for sym, body in shock["symbols"].items():
            if body["clusters"]:
                out.append(f"  ADL {sym}: {body['adl']['sentence']}")
                out.extend(f"    {q['sentence']}" for q in body["adl"].get("your_queue", []))
    if result["assumptions"]:
        out.append("assumed (state them in the file to change them):")
        out.extend(f"  - {a}" for a in result["assumptions"])
    return out


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    rows = []
    for shock in result["shocks"]:
        sym = shock["symbol"]
        me = shock["symbols"][sym]
        starts = shock["starts"]
        mine = shock["positions"]
        if not mine:
            act = "-"
        else:
            act = ", ".join(
                "not reached"
                if p["time_to_act_s"] is None
                else ("too late" if p["time_to_act_s"] <= 0 else f"{p['time_to_act_s']:.1f} s")
                for p in mine
            )
        rows.append(
            [
                f"{shock['shock_pct']:+g}% {sym}",
                "-" if starts is None else f"{starts['price']:,.6g} ({starts['side']}s)",
                f"{me['qty']:.4g} ({me['notional']:,.0f})",
                _beyond(me["beyond_shock_pct"], shock["range"]),
                f"{shock['rounds']} / {shock['duration_s']:.1f} s",
                act,
                me["adl"]["risk"],
            ]
        )
    return rows


def _beyond(point: float, span: dict[str, Any]) -> str:
    """The mark's reach beyond the shock; with its range when the shock is borderline."""
    if not span["borderline"]:
        return f"{point:.2f}%"
    low, high = span["beyond_shock_pct"]
    return f"{point:.2f}% ({low:.2f}-{high:.2f}%)"


TABLE_HEADERS = [
    "shock",
    "starts at",
    "liquidated (quote)",
    "mark beyond shock",
    "rounds / time",
    "your time to act",
    "ADL",
]
