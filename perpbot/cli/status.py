"""`perpbot status`: what every bot on this machine is doing, at a glance.

Reads the status files running bots publish (``<state>/bots/<run_id>.json``, written every
tick by perpbot.engine.status, with ``extras.risk`` from perpbot.risk.publish) and the kill
sentinel; no exchange request, no ccxt import. ``--live PROFILE`` also asks the exchange
(a ``read`` grant is enough) for that key's positions, open orders and balance.

    perpbot status                 the dashboard, once
    perpbot status --watch         refreshed every --interval seconds until Ctrl-C (exit 0)
    perpbot status --json          one JSON object (with --watch: one per refresh)
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import typer

from perpbot.errors import BadInput

DEAD_SHOWN_FOR_S = 3600.0  # a bot that died without stopping is shown this long


def register(app: typer.Typer) -> None:
    app.command("status")(status)


def status(
    watch: bool = typer.Option(False, "--watch", "-w", help="Refresh until Ctrl-C."),
    json_output: bool = typer.Option(False, "--json", help="JSON for scripts."),
    live: str | None = typer.Option(
        None, "--live", metavar="PROFILE", help="Also ask the exchange, with this key profile."
    ),
    url: str | None = typer.Option(
        None, "--url", help="With --live: base URL of a `perpbot sim serve` (sim profiles)."
    ),
    interval: float = typer.Option(2.0, "--interval", "-n", help="Seconds between refreshes."),
    show_all: bool = typer.Option(False, "--all", "-a", help="Include bots that stopped."),
) -> None:
    """Show running bots: positions, liquidation distance, orders, PnL, budget, index, alerts."""
    if not interval > 0:
        raise BadInput(f"--interval: got {interval:g}, expected a number of seconds > 0")
    if url is not None and live is None:
        raise BadInput("--url: only meaningful with --live PROFILE")

    def snapshot() -> dict[str, Any]:
        data = collect(include_stopped=show_all)
        if live is not None:
            data["live"] = live_view(live, url)
        return data

    if json_output:
        _json_loop(snapshot, watch, interval)
        return
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.cli.status_view import show

    show(snapshot, watch=watch, interval=interval)


def _json_loop(snapshot: Any, watch: bool, interval: float) -> None:
    while True:
        sys.stdout.write(json.dumps(snapshot(), sort_keys=True, default=str) + "\n")
        sys.stdout.flush()
        if not watch:
            return
        try:
            time.sleep(interval)
        except KeyboardInterrupt:
            return


# -- reading what bots publish -------------------------------------------------------------------
def liveness(doc: dict[str, Any], now: float, summary: dict[str, Any] | None) -> str:
    """running, starting, stale (alive but not writing), stopping, stopped or dead."""
    state = str(doc.get("state") or "unknown")
    if summary is not None:
        return "stopped"
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.procs import pid_alive

    if not pid_alive(doc.get("pid")):
        return "stopped" if state == "stopping" else "dead"
    tick = float(doc.get("tick_interval") or 1.0)
    if now - float(doc.get("updated_at") or 0.0) > max(15.0, 5.0 * tick):
        return "stale"
    return state


def _distance(amount: float, mark: float | None, liq: float | None) -> float | None:
    if not amount or not mark or not liq:
        return None
    return round(((mark - liq) if amount > 0 else (liq - mark)) / mark * 100.0, 4)


def bot_view(doc: dict[str, Any], now: float, summary: dict[str, Any] | None) -> dict[str, Any]:
    snap = doc.get("snapshot") or {}
    extras = snap.get("extras") or {}
    risk = extras.get("risk") or {}
    est = risk.get("liquidation") or {}
    state = liveness(doc, now, summary)
    started = float(doc.get("started_at") or now)
    until = now if state in ("running", "starting", "stale", "stopping") else doc.get("updated_at")
    positions = []
    for sym, p in (doc.get("positions") or {}).items():
        amount = float(p.get("amount") or 0.0)
        if not amount:
            continue
        mark = p.get("mark_price") or (snap.get("marks") or {}).get(sym)
        row = est.get(sym) or {}
        liq = p.get("liquidation_price") or row.get("estimate")
        positions.append(
            {
                "symbol": sym,
                "amount": amount,
                "entry_price": p.get("entry_price"),
                "mark_price": mark,
                "unrealized_pnl": p.get("unrealized_pnl"),
                "liquidation_price": liq,
                "liquidation_estimated": not p.get("liquidation_price") and liq is not None,
                "distance_pct": _distance(amount, mark, liq),
            }
        )
    return {
        "run_id": doc.get("run_id"),
        "strategy": doc.get("strategy"),
        "state": state,
        "pid": doc.get("pid"),
        "exchange": doc.get("exchange"),
        "profile": doc.get("profile"),
        "symbols": doc.get("symbols") or [],
        "started_at": started,
        "updated_at": doc.get("updated_at"),
        "uptime_s": round(float(until or now) - started, 3),
        "end_reason": (summary or {}).get("end_reason"),
        "positions": positions,
        "orders": snap.get("orders") or {"open": doc.get("open_orders", 0)},
        "open_orders": risk.get("orders") or [],
        "pnl": {
            k: snap.get(k)
            for k in ("net_pnl", "realized_pnl", "unrealized_pnl", "fees", "equity", "peak_equity")
        },
        "budget": risk.get("budget") or {},
        "rate": extras.get("rate") or {},  # the rate limiter's own figures, when it runs
        "start": (extras.get("sweep") or {}).get("said") or [],  # what the start found
        "streams": extras.get("streams") or {},  # on streams: each stream's state, events
        "index": risk.get("index") or {},
        "reduce_only": risk.get("reduce_only") or {},
        "alerts": risk.get("alerts") or [],
        "rejections": risk.get("rejections") or [],
        # fills the run did not place (a liquidation, an ADL, another client's): counts, last
        "unplaced": extras.get("unplaced") or {},
    }


def final_view(view: dict[str, Any], summary: dict[str, Any]) -> dict[str, Any]:
    """A stopped bot as it ended (its ``summary.json``), not its last status snapshot: the
    positions, open orders and PnL of the snapshot may no longer exist."""
    positions = []
    for sym, p in (summary.get("final_positions") or {}).items():
        if not isinstance(p, dict) or not p.get("amount"):
            continue
        positions.append(
            {
                "symbol": sym,
                "amount": float(p.get("amount") or 0.0),
                "entry_price": p.get("entry_price"),
                "mark_price": p.get("mark_price"),
                "unrealized_pnl": p.get("unrealized_pnl"),
                "liquidation_price": None,
                "liquidation_estimated": False,
                "distance_pct": None,
            }
        )
    ended = summary.get("ended_at") or view["updated_at"]
    pnl = {k: summary.get(k) for k in ("net_pnl", "realized_pnl", "unrealized_pnl", "fees")}
    pnl.update(equity=summary.get("end_equity"), peak_equity=summary.get("peak_equity"))
    return {
        **view,
        "updated_at": ended,
        "uptime_s": summary.get("runtime_s", view["uptime_s"]),
        "end_reason": summary.get("end_reason"),
        "exit_code": summary.get("exit_code"),
        "positions": positions,
        "orders": summary.get("orders") or {},
        "open_orders": [],  # a stopped bot tracks none (its summary counts them: orders.open)
        "pnl": pnl,
        "budget": {},
        "rate": {},
        "index": {},
        "reduce_only": {},
        "alerts": [],
        "rejections": [],
        "final": True,
    }


def _read(path: Path) -> dict[str, Any] | None:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return obj if isinstance(obj, dict) else None


def _kill_state() -> Any:
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.kill.sentinel import read_sentinel

    return read_sentinel()


def collect(include_stopped: bool = False, now: float | None = None) -> dict[str, Any]:
    """Every bot's view and the kill switch, as one JSON-able document."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.paths import bots_dir, runs_dir

    now = time.time() if now is None else now
    sentinel = _kill_state()
    bots = []
    for path in sorted(bots_dir().glob("*.json")):
        doc = _read(path)
        if doc is None or not doc.get("run_id"):
            continue
        summary = _read(runs_dir() / str(doc["run_id"]) / "summary.json")
        view = bot_view(doc, now, summary)
        if view["state"] == "stopped" and not include_stopped:
            continue
        if summary is not None:
            view = final_view(view, summary)
        age = now - float(doc.get("updated_at") or 0.0)
        if view["state"] == "dead" and not include_stopped and age > DEAD_SHOWN_FOR_S:
            continue
        entry = None
        if sentinel is not None:
            entry = sentinel.match(
                profile=doc.get("profile"), run_id=doc.get("run_id"), strategy=doc.get("strategy")
            )
        view["kill"] = entry.to_dict() if entry is not None else None
        bots.append(view)
    bots.sort(key=lambda b: (b["state"] != "running", -(b["started_at"] or 0.0)))
    return {
        "generated_at": now,
        "kill": sentinel.to_dict() if sentinel is not None else None,
        "bots": bots,
    }


# -- asking the exchange (--live) ----------------------------------------------------------------
def live_view(profile: str, url: str | None) -> dict[str, Any]:
    """Positions, open orders and balance of ``profile``'s key, straight from the exchange."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    import asyncio

    return asyncio.run(_live(profile, url))


async def _live(profile: str, url: str | None) -> dict[str, Any]:
    """Like every command that talks to an exchange: the full pipeline and the signed log."""
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.app.connect import connect
    from perpbot.audit.subscriber import attach_to_bus
    from perpbot.config import ExchangeSection
    from perpbot.events import EventBus

    exchange_id = _profile_exchange(profile)
    if exchange_id == "sim" and url is None:
        raise BadInput(
            f"--live {profile}: a simulator profile needs --url (the `perpbot sim serve` URL)"
        )
    section = ExchangeSection(id=exchange_id, url=url, profile=profile)
    run_id = f"status-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    bus = EventBus()
    if os.environ.get("PERPBOT_VERBOSE"):
        # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
        from perpbot.cli.verbose import attach_verbose

        attach_verbose(bus)
    log = attach_to_bus(bus, run_id=run_id, profile=profile, command="status")
    try:
        conn = await connect(section, command="status", run_id=run_id, bus=bus)
        try:
            client = conn.client
            positions = await client.fetch_positions()
            orders = await client.fetch_open_orders()
            balance = await client.fetch_balance()
        finally:
            await conn.close()
    finally:
        log.close("status --live")
    usdt = balance.get("USDT") or {}
    return {
        "profile": profile,
        "exchange": section.id,
        "positions": [
            {
                "symbol": p.get("symbol"),
                "amount": float((p.get("info") or {}).get("positionAmt") or 0.0),
                "entry_price": p.get("entryPrice"),
                "mark_price": p.get("markPrice"),
                "liquidation_price": p.get("liquidationPrice"),
                "unrealized_pnl": p.get("unrealizedPnl"),
                "distance_pct": _distance(
                    float((p.get("info") or {}).get("positionAmt") or 0.0),
                    p.get("markPrice"),
                    p.get("liquidationPrice"),
                ),
            }
            for p in positions
        ],
        "open_orders": [
            {
                "symbol": o.get("symbol"),
                "side": o.get("side"),
                "type": o.get("type"),
                "price": o.get("price"),
                "remaining": o.get("remaining"),
                "reduce_only": bool(o.get("reduceOnly")),
                "client_order_id": o.get("clientOrderId"),
            }
            for o in orders
        ],
        "balance": {k: usdt.get(k) for k in ("free", "used", "total")},
    }


def _profile_exchange(profile: str) -> str:
    # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
    from perpbot.keys.store import load_profile

    return load_profile(profile).exchange
