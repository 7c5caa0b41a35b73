"""The `perpbot status` dashboard: one panel per bot, one line per concern, built with rich.

rich is imported inside the functions (perpbot/cli modules import only typer and light
stdlib at module level), and only when a dashboard is actually drawn.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

MAX_ORDERS_SHOWN = 4
UNPLACED_SHOWN = 3  # fills the run did not place, the last ones shown
STATE_STYLE = {
    "running": "green",
    "starting": "cyan",
    "stopping": "yellow",
    "stale": "bold yellow",
    "dead": "bold red",
    "stopped": "dim",
}


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    s = max(0, int(seconds))
    if s < 90:
        return f"{s}s"
    if s < 5400:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{(s % 3600) // 60:02d}m"


def _num(x: Any, digits: int = 2, sign: bool = False) -> str:
    if x is None:
        return "-"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return f"{v:+,.{digits}f}" if sign else f"{v:,.{digits}f}"


def _price(x: Any) -> str:
    if x is None:
        return "-"
    v = float(x)
    return f"{v:,.2f}" if v >= 100 else f"{v:,.6g}"


def position_lines(bot: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for p in bot["positions"]:
        amount = p["amount"]
        side = "long" if amount > 0 else "short"
        liq = p.get("liquidation_price")
        dist = p.get("distance_pct")
        style = "red" if dist is not None and dist < 5 else "yellow" if dist and dist < 15 else ""
        liq_text = (
            f"liq {'~' if p.get('liquidation_estimated') else ''}{_price(liq)}"
            + (f" ({dist:.1f}% away)" if dist is not None else "")
            if liq
            else "liq -"
        )
        out.append(
            (
                f"{p['symbol']} {side} {abs(amount):g} @ {_price(p.get('entry_price'))}  "
                f"mark {_price(p.get('mark_price'))}  uPnL {_num(p.get('unrealized_pnl'), 4, True)}"
                f"  {liq_text}",
                style,
            )
        )
    return out or [("flat", "dim")]


def reserve_text(reserve: Any) -> str:
    """``reserve 10% (228 weight): 0 used`` out of the rate section's ``reserve``, or ''."""
    if not isinstance(reserve, dict) or reserve.get("weight") is None:
        return ""
    return (
        f"reserve {float(reserve.get('pct') or 0):g}% ({reserve['weight']} weight): "
        f"{reserve.get('used') or 0} used"
    )


def connections_text(conn: Any) -> str:
    """``connections 2/148 per 5m`` (new stream connections per IP) out of the rate
    section's ``connections``, with the cut and a refusal's hold when there are; or ''."""
    if not isinstance(conn, dict) or conn.get("limit") is None:
        return ""
    text = f"connections {conn.get('used') or 0}/{conn['limit']} per {conn.get('window')}"
    if conn.get("factor") not in (None, 1, 1.0):
        text += f" (cut to {float(conn['factor']):.0%} of {conn.get('nominal')})"
    if conn.get("held_for_s"):
        text += f", held {float(conn['held_for_s']):.0f}s after a refused handshake"
    return text


def budget_line(bot: dict[str, Any]) -> str:
    """The rate limiter's view when it publishes one, else the exchange's usage headers."""
    rate = bot.get("rate") or {}
    b = bot.get("budget") or {}
    parts = []
    if rate.get("weight_limit"):
        window = rate.get("weight_window") or "1m"
        parts.append(f"weight {rate.get('weight_used') or 0}/{rate['weight_limit']} per {window}")
        if rate.get("factor") not in (None, 1, 1.0):
            parts.append(f"cut to {float(rate['factor']):.0%} of {rate.get('weight_nominal')}")
        for window, o in (rate.get("orders") or {}).items():
            parts.append(f"orders {o.get('used', 0)}/{o.get('limit')} per {window}")
        reserve = reserve_text(rate.get("reserve"))
        if reserve:
            parts.append(reserve)
        conn = connections_text(rate.get("connections"))
        if conn:
            parts.append(conn)
        if rate.get("banned_for_s"):
            parts.append(f"BANNED {rate['banned_for_s']:.0f}s")
        elif rate.get("blocked_for_s"):
            parts.append(f"held back {rate['blocked_for_s']:.0f}s")
        elif rate.get("orders_blocked_for_s"):
            parts.append(f"new orders held back {rate['orders_blocked_for_s']:.0f}s")
    elif b.get("used_weight_1m") is not None:
        parts.append(f"weight {b['used_weight_1m']}/1m")
        counts = [
            f"{b[k]}/{w}"
            for k, w in (("order_count_10s", "10s"), ("order_count_1m", "1m"))
            if k in b
        ]
        if counts:
            parts.append("orders " + " ".join(counts))
    change = b.get("last_limit_change")
    if rate.get("last_change"):
        at = rate.get("last_change_at")
        age = _ago(time.time() - float(at)) + " ago" if at else ""
        code = rate.get("last_change_code") or ""
        parts.append(f"last limit change {age}: {code}: {rate['last_change']}")
    elif change:
        age = _ago(time.time() - float(change.get("ts") or time.time()))
        parts.append(f"last limit change {age} ago: {change['code']}: {change['sentence']}")
    else:
        parts.append("last limit change: none")
    return "  ·  ".join(parts)


STREAM_COUNTERS = ("reconnects", "backfills", "gaps", "stale", "user_silent", "rotations")


def streams_lines(bot: dict[str, Any]) -> list[tuple[str, str]]:
    """On streams: each stream's state (down or stale ones first, styled), the counts of
    reconnects, backfills, gaps, stalls and rotations, and the last stream decision."""
    s = bot.get("streams") or {}
    streams = s.get("streams") or []
    if not streams:
        return []
    bad = [x for x in streams if x.get("state") != "up"]
    states = ", ".join(f"{x['name']} {x['state'].upper()}" for x in bad) or (f"{len(streams)} up")
    counts = ", ".join(f"{k.replace('_', ' ')} {s[k]}" for k in STREAM_COUNTERS if s.get(k))
    out = [(states + (f"  ·  {counts}" if counts else ""), "bold yellow" if bad else "")]
    events = s.get("events") or []
    if events:
        last = events[-1]
        age = _ago(time.time() - float(last.get("ts") or time.time()))
        out.append((f"last: {last['code']} ({age} ago): {last['sentence']}", "dim"))
    return out


def unplaced_lines(bot: dict[str, Any]) -> list[tuple[str, str]]:
    """Fills the run did not place (perpbot.engine.unplaced): the counts, the last three."""
    section = bot.get("unplaced") or {}
    said = [f"{code} {n}" for code, n in sorted((section.get("counts") or {}).items())]
    if section.get("others"):  # a shared account: the other holders' fills, not said
        said.append(f"other holders' fills {section['others']} (shared, not said)")
    if not said:
        return []
    lines = [("  ".join(said), "bold red" if section.get("counts") else "dim")]
    for said in (section.get("recent") or [])[-UNPLACED_SHOWN:]:
        style = "bold red" if said.get("code") == "FILL_LIQUIDATION" else "yellow"
        lines.append((f"{said.get('code')}: {said.get('sentence')}", style))
    return lines


def index_lines(bot: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for sym, r in (bot.get("index") or {}).items():
        marks = " ".join(
            f"{s['name']}:{'ok' if s['status'] == 'good' else s['status']}" for s in r["sources"]
        )
        health = "healthy" if r["healthy"] else "UNHEALTHY"
        out.append(
            (
                f"{sym} {_price(r.get('price'))} {health} {r['good']}/{r['total']}  [{marks}]",
                "" if r["healthy"] else "bold red",
            )
        )
    return out


def bot_panel(bot: dict[str, Any], now: float) -> Any:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")

    def row(label: str, text: str, style: str = "") -> None:
        grid.add_row(label, Text(text, style=style))

    for i, (text, style) in enumerate(position_lines(bot)):
        row("positions" if i == 0 else "", text, style)
    o = bot.get("orders") or {}
    row(
        "orders",
        f"open {o.get('open', 0)}  ·  placed {o.get('placed', 0)} filled {o.get('filled', 0)} "
        f"cancelled {o.get('cancelled', 0)} rejected {o.get('rejected', 0)}",
    )
    listed = bot.get("open_orders") or []
    for o in listed[:MAX_ORDERS_SHOWN]:
        flags = "".join(
            f" {w}"
            for w, on in (("reduce-only", o.get("reduce_only")), ("post-only", o.get("post_only")))
            if on
        )
        row(
            "",
            f"{o.get('symbol')} {o.get('side')} {o.get('remaining')} @ "
            f"{_price(o.get('price'))}{flags}",
            "dim",
        )
    if len(listed) > MAX_ORDERS_SHOWN:
        row("", f"... and {len(listed) - MAX_ORDERS_SHOWN} more (--json lists them all)", "dim")
    pnl = bot.get("pnl") or {}

    def money(key: str) -> str:
        return _num(pnl.get(key), 4, True)

    row(
        "pnl",
        f"net {money('net_pnl')}  ·  realised {money('realized_pnl')}  unrealised "
        f"{money('unrealized_pnl')}  fees {_num(pnl.get('fees'), 4)}  ·  equity "
        f"{_num(pnl.get('equity'))}",
    )
    row("budget", budget_line(bot))
    for i, (text, style) in enumerate(streams_lines(bot)):
        row("streams" if i == 0 else "", text, style)
    for i, (text, style) in enumerate(index_lines(bot)):
        row("index" if i == 0 else "", text, style)
    for sym, why in (bot.get("reduce_only") or {}).items():
        row("REDUCE-ONLY", f"{sym}: {why}", "bold red")
    alerts = bot.get("alerts") or []
    for i, a in enumerate(alerts):
        style = "bold red" if a.get("trip") else "yellow"
        age = _ago(now - float(a.get("since") or now))
        row("alerts" if i == 0 else "", f"{a['code']} ({age}): {a['sentence']}", style)
    if not alerts:
        row("alerts", "none", "dim")
    for i, (text, style) in enumerate(unplaced_lines(bot)):
        row("not placed" if i == 0 else "", text, style)
    rejections = bot.get("rejections") or []
    if rejections:
        last = rejections[-1]
        row("last reject", f"{last['code']}: {last['sentence']}", "magenta")
    for i, said in enumerate(bot.get("start") or []):  # orders left, shared, manual
        row("at start" if i == 0 else "", f"{said.get('code')}: {said.get('sentence')}", "cyan")
    kill = bot.get("kill")
    if kill:
        row("KILL", f"{kill.get('level')}: {kill.get('reason')}", "bold white on red")
    state = bot["state"]
    title = Text.assemble(
        (f" {bot.get('strategy')} ", "bold"),
        (f"{bot.get('run_id')}  ", "dim"),
        (state.upper(), STATE_STYLE.get(state, "")),
        f"  up {_ago(bot.get('uptime_s'))}  ·  {bot.get('exchange')}  ·  pid {bot.get('pid')} ",
    )
    return Panel(grid, title=title, title_align="left", border_style=STATE_STYLE.get(state, ""))


def live_panel(live: dict[str, Any]) -> Any:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    bot_like = {"positions": [p for p in live["positions"] if p["amount"]]}
    for i, (text, _) in enumerate(position_lines(bot_like)):
        grid.add_row("positions" if i == 0 else "", text)
    for i, o in enumerate(live["open_orders"]):
        flags = " reduce-only" if o.get("reduce_only") else ""
        grid.add_row(
            "orders" if i == 0 else "",
            f"{o['symbol']} {o['side']} {o.get('remaining')} @ {_price(o.get('price'))}{flags}",
        )
    bal = live.get("balance") or {}
    grid.add_row("balance", f"total {_num(bal.get('total'))}  free {_num(bal.get('free'))}")
    return Panel(grid, title=f" live: {live['exchange']} profile {live['profile']} ")


def render(data: dict[str, Any]) -> Any:
    now = float(data.get("generated_at") or time.time())
    kill = data.get("kill")
    bots = data.get("bots") or []
    running = sum(1 for b in bots if b["state"] == "running")
    header = Text.assemble(
        ("perpbot status", "bold"),
        f"  ·  {running} running, {len(bots)} shown  ·  ",
        (
            (f"KILL SWITCH {kill['level'].upper()}: {kill.get('reason')}", "bold white on red")
            if kill
            else ("kill switch: clear", "green")
        ),
        (f"  ·  {time.strftime('%H:%M:%S', time.localtime(now))}", "dim"),
    )
    parts: list[Any] = [header]
    parts.extend(bot_panel(b, now) for b in bots)
    if not bots:
        parts.append(Text("no running bots (start one with `perpbot run STRATEGY.toml`)", "dim"))
    if data.get("live"):
        parts.append(live_panel(data["live"]))
    return Group(*parts)


def show(snapshot: Callable[[], dict[str, Any]], *, watch: bool, interval: float) -> None:
    console = Console()
    if not watch:
        console.print(render(snapshot()))
        return

    try:
        with Live(render(snapshot()), console=console, screen=True, auto_refresh=False) as live:
            while True:
                time.sleep(interval)
                live.update(render(snapshot()), refresh=True)
    except KeyboardInterrupt:
        return
