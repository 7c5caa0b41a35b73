"""The summary numbers of a run, computed from its journals, and their table layout.

Figures come from the fills journal (one line per fill of this run's own orders), so a report
of a run that crashed before writing its summary still adds up. Where the summary exists
and disagrees with the journal, the report says so rather than pick one silently.

Sign conventions: PnL figures are USDT gained (fees count as a cost, so they are subtracted);
slippage is in basis points against the price the strategy decided on, positive when the fill
was worse (a buy paid more, a sell got less).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from perpbot.report.data import RunData
from perpbot.report.extras import num
from perpbot.report.runs import RunInfo
from perpbot.report.series import RunSeries

ORDER_KEYS = ("placed", "filled", "partially_filled", "cancelled", "expired", "open", "rejected")


@dataclass
class Section:
    title: str
    rows: list[tuple[str, str]]


def _slippage(fill: dict[str, Any]) -> float | None:
    s = num(fill.get("slippage_bps"))
    if s is not None:
        return s
    price, decided = num(fill.get("price")), num(fill.get("decided_price"))
    if price is None or not decided:
        return None
    sign = 1.0 if fill.get("side") == "buy" else -1.0
    return sign * (price - decided) / decided * 1e4


def fill_numbers(fills: list[dict[str, Any]]) -> dict[str, Any]:
    maker = sum(1 for f in fills if f.get("maker") is True)
    taker = sum(1 for f in fills if f.get("maker") is False)
    known = maker + taker
    slips = [(s, num(f.get("cost")) or 0.0) for f in fills if (s := _slippage(f)) is not None]
    weight = sum(abs(c) for _, c in slips)
    fees: Counter[str] = Counter()
    for f in fills:
        fees[str(f.get("fee_currency") or "USDT")] += num(f.get("fee")) or 0.0
    return {
        "count": len(fills),
        "buys": sum(1 for f in fills if f.get("side") == "buy"),
        "sells": sum(1 for f in fills if f.get("side") == "sell"),
        "volume": sum(num(f.get("cost")) or 0.0 for f in fills),
        "maker": maker,
        "taker": taker,
        "maker_share": maker / known if known else None,
        "taker_share": taker / known if known else None,
        "fees": sum(num(f.get("fee")) or 0.0 for f in fills),
        "fees_by_currency": dict(fees),
        "realized_pnl": sum(num(f.get("realized_pnl")) or 0.0 for f in fills),
        "slippage": {
            "fills": len(slips),
            "mean_bps": sum(s for s, _ in slips) / len(slips) if slips else None,
            "weighted_bps": sum(s * abs(c) for s, c in slips) / weight if weight else None,
            "worst_bps": max(s for s, _ in slips) if slips else None,
        },
    }


def drawdown_numbers(series: RunSeries) -> dict[str, Any]:
    eq = series.equity
    if not eq:
        return {"max": None, "max_pct": None, "at": None, "peak_equity": None}
    worst, at, pct, peak = 0.0, None, 0.0, eq[0][1]
    for ts, value in eq:
        peak = max(peak, value)
        if peak - value > worst:
            worst, at = peak - value, ts
            pct = worst / peak * 100 if peak > 0 else 0.0
    return {
        "max": worst,
        "max_pct": pct,
        "at": at,
        "peak_equity": max(v for _, v in eq),
        "start_equity": eq[0][1],
        "end_equity": eq[-1][1],
    }


def _unrealized(run: RunData) -> float:
    if run.summary is not None and num(run.summary.get("unrealized_pnl")) is not None:
        return num(run.summary.get("unrealized_pnl")) or 0.0
    positions = run.ticks[-1].get("positions") if run.ticks else None
    if not isinstance(positions, dict):
        return 0.0
    return sum(num(p.get("upnl")) or 0.0 for p in positions.values() if isinstance(p, dict))


def _rejections(run: RunData) -> tuple[dict[str, int], str]:
    if run.summary is not None and isinstance(run.summary.get("rejections"), dict):
        return {str(k): int(num(v) or 0) for k, v in run.summary["rejections"].items()}, "summary"
    counts = Counter(
        str(e.get("code") or "UNKNOWN") for e in run.events if e.get("action") in ("reject",)
    )
    return dict(counts), "events"


def _orders(run: RunData) -> dict[str, int] | None:
    src = (run.summary or {}).get("orders")
    if not isinstance(src, dict) and run.ticks:
        src = run.ticks[-1].get("orders")
    if not isinstance(src, dict):
        return None
    return {k: int(num(src.get(k)) or 0) for k in ORDER_KEYS if k in src}


def compute(run: RunData, series: RunSeries) -> dict[str, Any]:
    """Every number the report shows, as plain JSON-able data."""
    fills = fill_numbers(run.fills)
    summ = run.summary or {}
    unreal = _unrealized(run)
    funding = num(summ.get("funding")) if run.summary is not None else None
    trading = fills["realized_pnl"] + unreal
    rejections, source = _rejections(run)
    numbers = {
        "pnl": {
            "trading": trading,
            "realized": fills["realized_pnl"],
            "unrealized": unreal,
            "fees": fills["fees"],
            "funding": funding,
            "net": trading - fills["fees"] + (funding or 0.0),
            "final": run.summary is not None,
        },
        "fills": fills,
        "orders": _orders(run),
        "rejections": rejections,
        "rejections_source": source,
        "drawdown": drawdown_numbers(series),
    }
    run.notes.extend(_disagreements(run, numbers))
    return numbers


def _disagreements(run: RunData, n: dict[str, Any]) -> list[str]:
    summ = run.summary
    if summ is None:
        return []
    out: list[str] = []
    count = num(summ.get("fills"))
    if count is not None and int(count) != n["fills"]["count"]:
        out.append(
            f"summary.json counts {int(count)} fills but fills.jsonl holds "
            f"{n['fills']['count']}; the table uses fills.jsonl"
        )
    fees = num(summ.get("fees"))
    if fees is not None and abs(fees - n["fills"]["fees"]) > 1e-6 + 1e-9 * abs(fees):
        out.append(
            f"summary.json fees {fees:.8f} differ from the fills journal's "
            f"{n['fills']['fees']:.8f}; the table uses fills.jsonl"
        )
    net = num(summ.get("net_pnl"))
    if net is not None and abs(net - n["pnl"]["net"]) > 1e-4:
        out.append(
            f"summary.json net PnL {net:+.4f} differs from the journals' {n['pnl']['net']:+.4f}"
        )
    return out


# -- layout -----------------------------------------------------------------------------------
def money(x: float | None) -> str:
    return "-" if x is None else f"{x:+,.4f}"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def bps(x: float | None) -> str:
    return "-" if x is None else f"{x:+.2f} bps"


def when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}h{m:02d}m{sec:02d}s" if h else f"{m}m{sec:02d}s" if m else f"{seconds:.1f}s"


def sections(info: RunInfo, n: dict[str, Any]) -> list[Section]:
    """The report's tables, in the order a trader reads them."""
    p, f, d = n["pnl"], n["fills"], n["drawdown"]
    slip = f["slippage"]
    pnl_note = "" if p["final"] else " (estimated: the run has no summary yet)"
    run_rows = [
        ("run", info.run_id),
        ("strategy", str(info.strategy or "-")),
        ("exchange", str(info.exchange or "-")),
        ("started", when(info.started_at)),
        ("duration", duration(info.duration_s)),
        ("ended", info.ended),
    ]
    pnl_rows = [
        ("trading (realised + unrealised)", money(p["trading"])),
        ("  realised", money(p["realized"])),
        ("  unrealised", money(p["unrealized"])),
        ("fees", money(-p["fees"])),
        ("funding", money(p["funding"]) if p["funding"] is not None else "unknown until stop"),
        ("net", money(p["net"]) + pnl_note),
    ]
    fill_rows = [
        ("fills", f"{f['count']} ({f['buys']} buys, {f['sells']} sells)"),
        ("volume (USDT)", f"{f['volume']:,.2f}"),
        ("maker / taker", f"{pct(f['maker_share'])} / {pct(f['taker_share'])}"),
        (
            "avg slippage vs decision",
            f"{bps(slip['mean_bps'])} over {slip['fills']} fills "
            f"(notional-weighted {bps(slip['weighted_bps'])}; worst {bps(slip['worst_bps'])})",
        ),
    ]
    if len(f["fees_by_currency"]) > 1:
        fill_rows.append(
            (
                "fees by currency",
                ", ".join(f"{v:.6f} {k}" for k, v in f["fees_by_currency"].items()),
            )
        )
    order_rows = [(k.replace("_", " "), str(v)) for k, v in (n["orders"] or {}).items()]
    rejected = sorted(n["rejections"].items(), key=lambda kv: -kv[1])
    order_rows += [(f"rejected: {code}", str(c)) for code, c in rejected]
    if not rejected:
        order_rows.append(("rejected by reason", "none"))
    dd_rows = [
        (
            "max drawdown",
            "-"
            if d["max"] is None
            else f"{d['max']:,.4f} USDT ({d['max_pct']:.3g}% of peak) at {when(d['at'])}"
            if d["at"]
            else "0 (equity never fell below its peak)",
        ),
        ("start equity", "-" if d["max"] is None else f"{d['start_equity']:,.4f}"),
        ("peak equity", "-" if d["max"] is None else f"{d['peak_equity']:,.4f}"),
        ("end equity", "-" if d["max"] is None else f"{d['end_equity']:,.4f}"),
    ]
    return [
        Section("Run", run_rows),
        Section("PnL (USDT)", pnl_rows),
        Section("Fills", fill_rows),
        Section("Orders", order_rows),
        Section("Equity", dd_rows),
    ]
