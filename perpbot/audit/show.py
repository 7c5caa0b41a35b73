"""Records as a trader reads them: one row (or line) per record, no chain noise."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text  # plain text: "[risk]" is a layer name, not rich markup

COLUMNS = ("seq", "time", "kind", "what", "outcome", "ms")


def _time(ts: Any) -> str:
    if not isinstance(ts, int | float):
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) + f".{int(ts * 1000) % 1000:03d}"


def _params(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return ""
    return " ".join(f"{k}={v}" for k, v in sorted(params.items()))


def row(rec: dict[str, Any]) -> tuple[str, str, str, str, str, str]:
    kind = str(rec.get("kind", "?"))
    seq = str(rec.get("seq", "?"))
    when = _time(rec.get("ts"))
    if kind == "exchange":
        what = " ".join(
            str(x)
            for x in (
                rec.get("method"),
                rec.get("http"),
                rec.get("path"),
                _params(rec.get("params")),
            )
            if x
        )
        if rec.get("ok"):
            outcome = f"{rec.get('status', '')} ok".strip()
        else:
            code = rec.get("err_code")
            outcome = f"{rec.get('status') or '-'} {rec.get('err_class') or 'error'}" + (
                f" code={code}" if code is not None else ""
            )
        latency = rec.get("latency_ms")
        ms = f"{latency:.1f}" if isinstance(latency, int | float) else ""
        return seq, when, kind, what, outcome, ms
    if kind == "decision":
        what = f"[{rec.get('layer')}] {rec.get('code')}: {rec.get('sentence')}"
        return seq, when, kind, what, str(rec.get("action", "")), ""
    if kind == "fill":
        what = (
            f"{rec.get('symbol')} {rec.get('side')} {rec.get('amount')} @ {rec.get('price')} "
            f"{rec.get('client_order_id') or rec.get('order_id')} trade {rec.get('trade_id')}"
        )
        return seq, when, kind, what, str(rec.get("source", "")), ""
    if kind == "order":
        what = (
            f"{rec.get('client_order_id')} {rec.get('symbol')} {rec.get('side', '')} "
            f"{rec.get('amount', '')} @ {rec.get('price', '')} filled {rec.get('filled')}"
        )
        return seq, when, kind, what, f"{rec.get('status')} ({rec.get('source')})", ""
    if kind == "gap":
        what = (
            f"{rec.get('requests')} request(s) sent unrecorded since "
            f"{_time(rec.get('since'))} ({rec.get('reason')}), written late from memory"
        )
        return seq, when, kind, what, "signed", ""
    if kind == "open":
        what = f"run {rec.get('run')} ({rec.get('command')}) opened, key {rec.get('key')}"
        link = rec.get("link")
        if isinstance(link, dict):
            what += f", continues run {link.get('run')} seq {link.get('seq')}"
        return seq, when, kind, what, "signed", ""
    reason = rec.get("reason")
    return seq, when, kind, f"{kind} ({reason})" if reason else kind, "signed", ""


def line(rec: dict[str, Any]) -> str:
    seq, when, kind, what, outcome, ms = row(rec)
    tail = f" {ms}ms" if ms else ""
    return f"{seq:>6} {when} {kind:<10} {what} -> {outcome}{tail}"


def json_line(rec: dict[str, Any]) -> str:
    return json.dumps(rec, sort_keys=True, ensure_ascii=False)


def print_table(records: Iterable[dict[str, Any]], title: str) -> int:
    """A rich table on stdout; returns how many records were shown."""
    table = Table(title=title, show_lines=False, expand=False)
    for name in COLUMNS:
        table.add_column(
            name, justify="right" if name in ("seq", "ms") else "left", overflow="fold"
        )
    count = 0
    for rec in records:
        table.add_row(*(Text(cell) for cell in row(rec)))
        count += 1
    Console().print(table)
    return count
