"""Sentences about what a kill left behind: open orders, positions, the exchange's countdown.

Shared by the bots' acknowledgements, `perpbot kill` and `kill --direct`. Standard library
only: it is on the `perpbot kill` path.
"""

from __future__ import annotations

import time
from typing import Any

Output = tuple[dict[str, Any], list[str]]  # (the JSON document, the lines to print)


def describe_left(left: list[dict[str, Any]], unconfirmed: list[str] | None = None) -> str:
    """'3 order(s) left open: BTC/USDT:USDT pb-x-1, pb-x-2; ETH/USDT:USDT 991' (or '')."""
    by_symbol: dict[str, list[str]] = {}
    for o in left:
        ident = o.get("client_order_id") or o.get("order_id") or "?"
        by_symbol.setdefault(str(o.get("symbol")), []).append(str(ident))
    parts = [f"{symbol} {', '.join(ids)}" for symbol, ids in sorted(by_symbol.items())]
    text = f"{len(left)} order(s) left open: {'; '.join(parts)}" if left else ""
    if unconfirmed:
        text += ("; " if text else "") + (
            f"could not confirm what is open on {', '.join(sorted(unconfirmed))} "
            "(the exchange did not answer)"
        )
    return text


def describe_positions_left(left: dict[str, Any]) -> str:
    """'positions left open: BTC/USDT:USDT +0.01, ETH/USDT:USDT unknown' (or ''); a
    hedge-mode side as 'BTC/USDT:USDT LONG +0.01'."""
    if not left:
        return ""
    parts = [
        f"{symbol.replace('|', ' ')} {'unknown' if amount is None else format(amount, '+g')}"
        for symbol, amount in sorted(left.items())
    ]
    return f"positions left open: {', '.join(parts)}"


def describe_countdown(cover: dict[str, Any]) -> str:
    """What the exchange's dead-man countdown does about what a kill left open."""
    parts = []
    if cover.get("armed"):
        when = cover.get("fires_by")
        at = time.strftime("%H:%M:%S UTC", time.gmtime(float(when))) if when is not None else "?"
        countdown = float(cover.get("countdown_s") or 0)
        parts.append(
            f"the exchange's dead-man countdown on {', '.join(cover['armed'])} cancels the "
            f"orders left there by {at} at the latest ({countdown:g} s after its "
            "last refresh; the bot stopped refreshing it when it saw the switch)"
        )
    if cover.get("uncovered"):
        parts.append(
            f"no dead-man countdown of this bot covers {', '.join(cover['uncovered'])}: "
            "what is left there stays until cancelled (`perpbot kill --direct`, or by hand)"
        )
    return "; ".join(parts)


WAIT_NAMES = {
    "retry_after": "the exchange's Retry-After (after a 429)",
    "ban": "the exchange's IP ban (418)",
    "budget": "the rate budget",
}


def _clock(epoch: Any) -> str:
    try:
        return time.strftime("%H:%M:%S UTC", time.gmtime(float(epoch)))
    except (TypeError, ValueError, OverflowError):
        return "?"


def describe_waits(cut: list[dict[str, Any]], waited: list[dict[str, Any]]) -> list[str]:
    """Sentence parts about the rate-limit waits a kill met (see kill/waitcut.py): one per
    kind of hold, naming the requests it held."""
    parts = []
    for reason in sorted({str(w.get("reason")) for w in cut}):
        of = [w for w in cut if str(w.get("reason")) == reason]
        last = max(of, key=lambda w: float(w.get("until") or 0))
        what = WAIT_NAMES.get(reason, reason)
        requests = ", ".join(str(w.get("request")) for w in of)
        parts.append(
            f"did not wait out {what}, which holds requests until {_clock(last.get('until'))}: "
            f"the kill switch cut short the wait of {requests} (not sent)"
        )
    for w in waited:
        what = WAIT_NAMES.get(str(w.get("reason")), str(w.get("reason")))
        parts.append(f"waited {w.get('wait_s')} s for {what} ({w.get('request')})")
    return parts


def describe_problems(errors: list[str], limit: int = 3) -> list[str]:
    """'problem: ...' parts, each distinct once, at most ``limit`` (and how many more)."""
    distinct = list(dict.fromkeys(errors))
    parts = [f"problem: {e}" for e in distinct[:limit]]
    if len(distinct) > limit:
        parts.append(f"{len(distinct) - limit} more problem(s) in the acknowledgement file")
    return parts


def left_behind(doc: dict[str, Any]) -> list[str]:
    """What an acknowledgement or a ``--direct`` report says is still open (orders not
    confirmed gone, positions): each a reason `perpbot kill` must exit 1."""
    left = describe_left(doc.get("left_open") or [], doc.get("unconfirmed") or [])
    positions = describe_positions_left(doc.get("positions_left") or {})
    return [text for text in (left, positions) if text]


# -- `perpbot kill --direct` -----------------------------------------------------------
def describe_direct(report: dict[str, Any]) -> list[str]:
    where = report.get("url") or report.get("exchange")
    symbols = ", ".join(report.get("symbols") or []) or "no symbol"
    parts = [
        f"direct on {where}: cancelled {len(report.get('cancelled') or [])} order(s) on {symbols}"
    ]
    for c in report.get("closed") or []:
        parts.append(f"closed {c.get('symbol')} {c.get('from', 0):+g} -> {c.get('to', 0):+g}")
    lines = ["; ".join(parts)]
    lines.extend(
        f"direct on {where}: {w}"
        for w in describe_waits(report.get("waits_cut") or [], report.get("waits_waited") or [])
    )
    left = left_behind(report)
    if left:
        lines.append(f"direct on {where}: " + "; ".join(left))
    return lines


def direct_countdown_lines(report: dict[str, Any], acks: list[dict[str, Any]]) -> list[str]:
    """When the exchange's countdown cancels what ``--direct`` left: the bots' acks say when
    for the symbols their countdown covers; for the others, what is known in general."""
    where = report.get("url") or report.get("exchange")
    symbols = {str(o.get("symbol")) for o in report.get("left_open") or []}
    symbols |= set(report.get("unconfirmed") or [])
    lines = []
    for ack in acks:
        cover = ack.get("countdown") or {}
        armed = sorted(symbols & set(cover.get("armed") or []))
        if armed and cover.get("fires_by") is not None:
            lines.append(
                f"direct on {where}: as bot {ack.get('run_id')} acknowledged, "
                + describe_countdown({**cover, "armed": armed, "uncovered": []})
            )
            symbols -= set(armed)
    if symbols:
        lines.append(f"direct on {where}: {', '.join(sorted(symbols))}: {DIRECT_COUNTDOWN_NOTE}")
    return lines


DIRECT_COUNTDOWN_NOTE = (
    "if a bot armed the exchange's dead-man countdown there (Binance "
    "countdownCancelAll, [kill] deadman_countdown_s, 60 s by default) and has stopped "
    "refreshing it, the exchange cancels the orders left there within that countdown of its "
    "last refresh (see that bot's acknowledgement); otherwise they stay until cancelled"
)


def direct_failures(report: dict[str, Any]) -> list[str]:
    out = [f"--direct: {text}" for text in left_behind(report)]
    if not out:
        out.extend(f"--direct: {e}" for e in report.get("errors", []))
    return out
