"""What `perpbot run` shows while it runs and when it stops.

Three modes: a live rich panel on a terminal, plain lines otherwise (logs, CI, pipes), and
``--json`` (nothing but one JSON summary object on stdout). Guard decisions are printed
with their reason code and sentence, never with request parameters.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from typing import Any, Literal, TextIO

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table

from perpbot.events import Decision, Event

Mode = Literal["live", "plain", "json"]


def fmt_money(x: float | None) -> str:
    return "-" if x is None else f"{x:+,.4f}"


class RunOutput:
    def __init__(self, mode: Mode, stream: TextIO | None = None, err: TextIO | None = None):
        self.mode = mode
        self.out = stream or sys.stdout
        self.err = err or sys.stderr
        self.recent: deque[str] = deque(maxlen=8)
        self._lock = threading.Lock()
        self._live: Any = None
        self._last_status = 0.0
        self.snapshot: dict[str, Any] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def start(self, header: str) -> None:
        if self.mode == "live":
            self._header = header
            self._live = Live(self._render(), refresh_per_second=4, transient=False)
            self._live.start()
        elif self.mode == "plain":
            self._line(header)

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self._render())
            self._live.stop()
            self._live = None

    # -- feeds ------------------------------------------------------------------------------
    def on_event(self, event: Event) -> None:
        if isinstance(event, Decision):
            self.note(f"[{event.layer}] {event.code}: {event.sentence}")
            if event.action == "warn":  # a decision the trader must see even on a panel
                self.warn(event.sentence)

    def note(self, text: str) -> None:
        stamp = time.strftime("%H:%M:%S")
        with self._lock:
            self.recent.append(f"{stamp} {text}")
        if self.mode == "plain":
            self._line(text)
        elif self.mode == "json":
            pass
        self._refresh()

    def strategy_line(self, text: str) -> None:
        self.note(f"strategy: {text}")

    def warn(self, text: str) -> None:
        print(f"perpbot: warning: {text}", file=self.err, flush=True)

    def update(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot
        now = time.monotonic()
        if self.mode == "plain" and now - self._last_status >= 10.0:
            self._last_status = now
            self._line(self._status_line(snapshot))
        self._refresh()

    # -- final ------------------------------------------------------------------------------
    def summary(self, summary: dict[str, Any]) -> None:
        self.stop()
        if self.mode == "json":
            self.out.write(json.dumps(summary, sort_keys=True, default=str) + "\n")
            self.out.flush()
            return
        for line in summary_lines(summary):
            self._line(line)

    # -- rendering --------------------------------------------------------------------------
    def _line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def _refresh(self) -> None:
        if self._live is not None:
            self._live.update(self._render())

    @staticmethod
    def _status_line(s: dict[str, Any]) -> str:
        pos = ", ".join(f"{k} {v:+g}" for k, v in (s.get("positions") or {}).items()) or "flat"
        o = s.get("orders") or {}
        return (
            f"status: up {s.get('uptime_s', 0):.0f}s | orders placed {o.get('placed', 0)} "
            f"filled {o.get('filled', 0)} open {o.get('open', 0)} | fills {s.get('fills', 0)} | "
            f"position {pos} | pnl {fmt_money(s.get('net_pnl'))}"
        )

    def _render(self) -> Any:
        s = self.snapshot
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        o = s.get("orders") or {}
        table.add_row("uptime", f"{s.get('uptime_s', 0):.0f} s")
        for sym, amt in (s.get("positions") or {}).items():
            mark = (s.get("marks") or {}).get(sym)
            shown = f"{mark:,.2f}" if mark is not None else "-"
            table.add_row(sym, f"position {amt:+g}  mark {shown}")
        table.add_row(
            "orders",
            f"placed {o.get('placed', 0)}  filled {o.get('filled', 0)}  open {o.get('open', 0)}  "
            f"cancelled {o.get('cancelled', 0)}  rejected {o.get('rejected', 0)}",
        )
        table.add_row("fills", str(s.get("fills", 0)))
        table.add_row("fees", fmt_money(s.get("fees")))
        table.add_row(
            "pnl",
            f"realised {fmt_money(s.get('realized_pnl'))}  "
            f"unrealised {fmt_money(s.get('unrealized_pnl'))}",
        )
        for key, value in extras_lines(s.get("extras") or {}):
            table.add_row(key, value)
        with self._lock:
            recent = "\n".join(self.recent) or "(no events yet)"
        return Panel(
            Group(table, Panel(recent, title="recent", border_style="dim")),
            title=getattr(self, "_header", "perpbot"),
        )


def extras_lines(extras: dict[str, Any]) -> list[tuple[str, str]]:
    """One readable line per concern's section (the status file keeps the full detail)."""
    out: list[tuple[str, str]] = []
    rate = extras.get("rate")
    if isinstance(rate, dict) and rate.get("weight_limit"):
        line = (
            f"weight {rate.get('weight_used', 0)}/{rate.get('weight_limit')} per "
            f"{rate.get('weight_window', '?')} (exchange {rate.get('weight_nominal', '?')})"
        )
        if rate.get("banned_for_s"):
            line += f"  BANNED {rate['banned_for_s']:.0f} s"
        elif rate.get("blocked_for_s"):
            line += f"  waiting {rate['blocked_for_s']:.0f} s"
        elif rate.get("orders_blocked_for_s"):
            line += f"  new orders waiting {rate['orders_blocked_for_s']:.0f} s (order count)"
        out.append(("rate", line))
        if rate.get("last_change"):
            out.append(("last limit", str(rate["last_change"])))
    risk = extras.get("risk")
    if isinstance(risk, dict):
        for sym, idx in (risk.get("index") or {}).items():
            if isinstance(idx, dict):
                health = "healthy" if idx.get("healthy") else "UNHEALTHY"
                good = f"{idx.get('good', '?')}/{idx.get('total', '?')} sources"
                out.append((f"index {sym}", f"{idx.get('price', '-')} ({health}, {good})"))
        for sym, liq in (risk.get("liquidation") or {}).items():
            if isinstance(liq, dict) and liq.get("distance_pct") is not None:
                out.append((f"liq {sym}", f"{liq['distance_pct']:.1f}% away"))
        alerts = risk.get("alerts") or []
        out.append(("alerts", ", ".join(str(a.get("code", a)) for a in alerts) or "none"))
    for key, value in extras.items():
        if key not in ("rate", "risk") and isinstance(value, str | int | float):
            out.append((key, str(value)))
    return out


def summary_lines(s: dict[str, Any]) -> list[str]:
    o = s.get("orders") or {}
    lines = [
        f"run {s.get('run_id')} stopped ({s.get('end_reason')}) "
        f"after {s.get('runtime_s', 0):.1f} s",
        f"  orders: placed {o.get('placed', 0)}, filled {o.get('filled', 0)}, "
        f"cancelled {o.get('cancelled', 0)}, rejected {o.get('rejected', 0)}, "
        f"expired {o.get('expired', 0)}",
        f"  fills: {s.get('fills', 0)} (volume {s.get('volume', 0):,.2f})",
        f"  fees: {fmt_money(s.get('fees'))}  funding: {fmt_money(s.get('funding'))}",
        f"  pnl: realised {fmt_money(s.get('realized_pnl'))}, "
        f"unrealised {fmt_money(s.get('unrealized_pnl'))}, net {fmt_money(s.get('net_pnl'))}",
    ]
    positions = s.get("final_positions") or {}
    if positions:
        for sym, p in positions.items():
            lines.append(
                f"  final position {sym}: {p.get('amount', 0):+g} @ {p.get('entry_price')}"
            )
    else:
        lines.append("  final position: flat")
    for code, n in (s.get("rejections") or {}).items():
        lines.append(f"  rejected {n} x {code}")
    kill = s.get("kill")
    if isinstance(kill, dict) and kill.get("summary"):
        lines.append(f"  {kill['summary']}")
    lines.append(f"  files: {s.get('run_dir')}")
    return lines
