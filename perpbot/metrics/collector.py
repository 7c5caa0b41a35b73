"""The metric families and how events and ticks update them.

Every series carries ``bot`` (the strategy's name), ``exchange`` (its id) and ``host`` (the
API host; ``embedded-sim`` for the embedded simulator). Each run has its own registry, so a
run's figures never mix with another process's.

Stream health and lag come from the tick's ``streams`` section (perpbot/streams/feed.py:
each stream's name, state and seconds since its last message); a run that polls REST has no
such section and exports no stream series rather than a made-up one.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from perpbot.events import Decision, Event, ExchangeCall
from perpbot.identity import RunIdentity
from perpbot.report.extras import rate_figures

BASE = ("bot", "exchange", "host")
ORDER_METHODS = {
    "create_order": "create",
    "cancel_order": "cancel",
    "cancel_all_orders": "cancel_all",
    "edit_order": "edit",
}
WEIGHT_HEADER = "x-mbx-used-weight-1m"


class RunMetrics:
    def __init__(self, identity: RunIdentity, registry: CollectorRegistry | None = None) -> None:
        self.identity = identity
        self.registry = registry or CollectorRegistry()
        self.base = (identity.bot, identity.exchange, identity.exchange_host)
        r = self.registry

        def counter(name: str, doc: str, *extra: str) -> Counter:
            return Counter(name, doc, (*BASE, *extra), registry=r)

        def gauge(name: str, doc: str, *extra: str) -> Gauge:
            return Gauge(name, doc, (*BASE, *extra), registry=r)

        self.info = gauge("perpbot_run_info", "The running run (value 1).", "run_id")
        self.started = gauge("perpbot_run_start_time_seconds", "When the run started (epoch).")
        self.last_tick = gauge("perpbot_last_tick_time_seconds", "When the last tick ran.")
        self.requests = counter(
            "perpbot_exchange_requests", "Exchange requests by method and outcome.", "method",
            "outcome",
        )  # fmt: skip
        self.latency = Histogram(
            "perpbot_exchange_request_seconds",
            "Exchange request latency.",
            BASE,
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.orders = counter("perpbot_orders", "Order requests by kind and outcome.", "kind",
                              "outcome")  # fmt: skip
        self.http_429 = counter("perpbot_http_429", "HTTP 429 answers (rate limited).")
        self.http_418 = counter("perpbot_http_418", "HTTP 418 answers (IP banned).")
        self.waits = counter("perpbot_rate_waits", "Explained rate-limit waits (> 1 s).", "code")
        self.wait_s = counter("perpbot_rate_wait_seconds", "Seconds held by explained waits.")
        self.decisions = counter(
            "perpbot_decisions", "Decisions by layer, action and reason code.", "layer",
            "action", "code",
        )  # fmt: skip
        self.alerts = counter(
            "perpbot_alert_deliveries", "Alert deliveries by destination and result.",
            "destination", "result",
        )  # fmt: skip
        self.weight_used = gauge("perpbot_weight_used", "Request weight used in the window.")
        self.weight_limit = gauge("perpbot_weight_limit", "Request weight the limiter allows.")
        self.weight_exchange = gauge(
            "perpbot_exchange_weight_used", "Request weight the exchange reported (1m header)."
        )
        self.budget_factor = gauge("perpbot_rate_budget_factor", "Budget cut factor (1 = full).")
        self.banned_for = gauge("perpbot_rate_banned_seconds", "Seconds left of a 418 ban.")
        self.position = gauge("perpbot_position_contracts", "Position (signed).", "symbol")
        self.mark = gauge("perpbot_mark_price", "Mark price.", "symbol")
        self.liq_distance = gauge(
            "perpbot_liquidation_distance_ratio",
            "|mark - liquidation| / mark for an open position.",
            "symbol",
        )
        self.pnl = gauge("perpbot_pnl_usdt", "PnL of this run (realized, unrealized, net, fees).",
                         "kind")  # fmt: skip
        self.equity = gauge("perpbot_equity_usdt", "Account equity.")
        self.open_orders = gauge("perpbot_open_orders", "This run's open orders.")
        self.kill = gauge("perpbot_kill_active", "1 while a kill switch applies to this run.")
        self.kill_level = gauge("perpbot_kill_level", "Kill level in force (1 = active).", "level")
        self.stream_up = gauge("perpbot_stream_up", "1 while the stream is up (not stale or "
                               "down).", "stream")  # fmt: skip
        self.stream_lag = gauge("perpbot_stream_lag_seconds", "Seconds since the stream's last "
                                "message.", "stream")  # fmt: skip
        self.stream_reconnects = gauge("perpbot_stream_reconnects", "Reconnects of the stream "
                                       "in this run.", "stream")  # fmt: skip
        self.info.labels(*self.base, identity.run_id).set(1)
        self.started.labels(*self.base).set(time.time())
        self.kill.labels(*self.base).set(0)
        for c in (self.http_429, self.http_418, self.wait_s):
            c.labels(*self.base)  # a zero series from the start, so rate() works at once

    # -- events (publisher's thread; a few dict lookups each) ------------------------------------
    def on_event(self, event: Event) -> None:
        b = self.base
        if isinstance(event, ExchangeCall):
            if event.ok:
                outcome = "ok"
            else:
                outcome = str(event.status) if event.status else (event.error_class or "error")
            self.requests.labels(*b, event.method, outcome).inc()
            self.latency.labels(*b).observe(event.latency_ms / 1000.0)
            kind = ORDER_METHODS.get(event.method)
            if kind:
                self.orders.labels(*b, kind, "ok" if event.ok else "failed").inc()
            if event.status == 429:
                self.http_429.labels(*b).inc()
            elif event.status == 418:
                self.http_418.labels(*b).inc()
            for name, value in event.rate_headers.items():  # as the server spelled them
                if name.lower() == WEIGHT_HEADER:
                    with contextlib.suppress(ValueError):
                        self.weight_exchange.labels(*b).set(float(value))
            return
        if not isinstance(event, Decision):
            return
        self.decisions.labels(*b, event.layer, event.action, event.code).inc()
        if event.action == "wait":
            self.waits.labels(*b, event.code).inc()
            wait = event.data.get("wait_s")
            if isinstance(wait, int | float):
                self.wait_s.labels(*b).inc(max(float(wait), 0.0))
        elif event.code in ("ALERT_SENT", "ALERT_DELIVERY_FAILED"):
            dest = str(event.data.get("destination", "?"))
            result = "sent" if event.code == "ALERT_SENT" else "failed"
            self.alerts.labels(*b, dest, result).inc()
        elif event.code == "KILL_SEEN":
            self.kill.labels(*b).set(1)
        elif event.code == "KILL_CLEARED":
            self.kill.labels(*b).set(0)

    # -- ticks --------------------------------------------------------------------------------
    def on_tick(self, snap: Mapping[str, Any], positions: Mapping[str, Mapping[str, Any]]) -> None:
        """``snap``: the runner's snapshot; ``positions``: symbol -> amount, mark_price,
        liquidation_price (the status file's shape)."""
        b = self.base
        self.last_tick.labels(*b).set(time.time())
        for kind, key in (
            ("realized", "realized_pnl"),
            ("unrealized", "unrealized_pnl"),
            ("net", "net_pnl"),
            ("fees", "fees"),
        ):
            value = snap.get(key)
            if isinstance(value, int | float):
                self.pnl.labels(*b, kind).set(value)
        equity = snap.get("equity")
        if isinstance(equity, int | float):
            self.equity.labels(*b).set(equity)
        orders = snap.get("orders") or {}
        if isinstance(orders.get("open"), int):
            self.open_orders.labels(*b).set(orders["open"])
        marks = snap.get("marks") or {}
        for symbol in set(self.identity.symbols) | set(positions) | set(marks):
            pos = positions.get(symbol) or {}
            amount = float(pos.get("amount") or 0.0)
            self.position.labels(*b, symbol).set(amount)
            mark = pos.get("mark_price") or marks.get(symbol)
            if mark:
                self.mark.labels(*b, symbol).set(float(mark))
            liq = pos.get("liquidation_price")
            if amount and mark and liq:
                self.liq_distance.labels(*b, symbol).set(
                    abs(float(mark) - float(liq)) / float(mark)
                )
            else:  # flat: no distance to show (the series goes away rather than lie)
                with contextlib.suppress(KeyError):
                    self.liq_distance.remove(*b, symbol)
        extras = snap.get("extras") or {}
        used, limit, _ = rate_figures(extras.get("rate"))
        if used is not None:
            self.weight_used.labels(*b).set(used)
        if limit is not None:
            self.weight_limit.labels(*b).set(limit)
        rate = extras.get("rate") if isinstance(extras.get("rate"), dict) else {}
        if isinstance(rate.get("factor"), int | float):
            self.budget_factor.labels(*b).set(rate["factor"])
        if isinstance(rate.get("banned_for_s"), int | float):
            self.banned_for.labels(*b).set(rate["banned_for_s"])
        kill = extras.get("kill")
        self.kill.labels(*b).set(1 if kill else 0)
        for level in ("halt", "cancel", "flatten"):
            active = isinstance(kill, dict) and kill.get("level") == level
            self.kill_level.labels(*b, level).set(1 if active else 0)
        section = extras.get("streams")
        health = section.get("streams") if isinstance(section, dict) else None
        for h in health if isinstance(health, list) else []:
            if not isinstance(h, dict) or not isinstance(h.get("name"), str):
                continue
            name = h["name"]
            self.stream_up.labels(*b, name).set(1 if h.get("state") == "up" else 0)
            if isinstance(h.get("age_s"), int | float):
                self.stream_lag.labels(*b, name).set(h["age_s"])
            if isinstance(h.get("reconnects"), int):
                self.stream_reconnects.labels(*b, name).set(h["reconnects"])
