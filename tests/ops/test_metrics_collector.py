"""The collector against the events and ticks a run produces (the names the dashboard uses)."""

from __future__ import annotations

import json
from pathlib import Path

from prometheus_client import generate_latest

from perpbot.events import Decision, EventBus, ExchangeCall
from perpbot.identity import RunIdentity
from perpbot.metrics.collector import RunMetrics

ROOT = Path(__file__).resolve().parents[2]
ID = RunIdentity.of(
    run_id="r1", bot="grid", exchange="binanceusdm", url="https://fapi.binance.com",
    symbols=["BTC/USDT:USDT"],
)  # fmt: skip
B = {"bot": "grid", "exchange": "binanceusdm", "host": "fapi.binance.com"}


def _value(m: RunMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, {**B, **labels})


def test_events_and_ticks_become_series() -> None:
    m = RunMetrics(ID)
    bus = EventBus()
    bus.subscribe(m.on_event)
    bus.publish(ExchangeCall(1, "create_order", "POST", "/fapi/v1/order", {}, 200, True,
                             rate_headers={"X-MBX-USED-WEIGHT-1M": "37"}))  # fmt: skip
    for i in range(3):
        bus.publish(ExchangeCall(2 + i, "fetch_positions", "GET", "/p", {}, 429, False))
    bus.publish(ExchangeCall(9, "cancel_order", "DELETE", "/o", {}, 418, False))
    bus.publish(Decision("ratelimit", "wait", "RATE_WAIT_BUDGET", "w", {"wait_s": 2.5}))
    bus.publish(Decision("alerts", "info", "ALERT_SENT", "s", {"destination": "phone"}))
    bus.publish(Decision("alerts", "alert", "ALERT_DELIVERY_FAILED", "f", {"destination": "m"}))
    bus.publish(Decision("kill", "act", "KILL_SEEN", "seen"))
    assert _value(m, "perpbot_http_429_total") == 3
    assert _value(m, "perpbot_http_418_total") == 1
    assert _value(m, "perpbot_orders_total", kind="create", outcome="ok") == 1
    assert _value(m, "perpbot_orders_total", kind="cancel", outcome="failed") == 1
    assert _value(m, "perpbot_exchange_weight_used") == 37
    assert _value(m, "perpbot_rate_wait_seconds_total") == 2.5
    assert _value(m, "perpbot_rate_waits_total", code="RATE_WAIT_BUDGET") == 1
    assert _value(m, "perpbot_alert_deliveries_total", destination="phone", result="sent") == 1
    assert _value(m, "perpbot_alert_deliveries_total", destination="m", result="failed") == 1
    assert _value(m, "perpbot_kill_active") == 1
    assert _value(m, "perpbot_decisions_total", layer="kill", action="act", code="KILL_SEEN") == 1

    snap = {
        "net_pnl": -1.5, "realized_pnl": 1.0, "unrealized_pnl": -2.0, "fees": 0.5,
        "equity": 1000.0, "orders": {"open": 4}, "marks": {"BTC/USDT:USDT": 50000.0},
        "extras": {"rate": {"weight_used": 120, "weight_limit": 2280, "factor": 0.5,
                            "banned_for_s": 0.0}},
    }  # fmt: skip
    pos = {"BTC/USDT:USDT": {"amount": 0.01, "mark_price": 50000.0, "liquidation_price": 45000}}
    m.on_tick(snap, pos)
    assert _value(m, "perpbot_liquidation_distance_ratio", symbol="BTC/USDT:USDT") == 0.1
    assert _value(m, "perpbot_position_contracts", symbol="BTC/USDT:USDT") == 0.01
    assert _value(m, "perpbot_pnl_usdt", kind="net") == -1.5
    assert _value(m, "perpbot_weight_used") == 120 and _value(m, "perpbot_weight_limit") == 2280
    assert _value(m, "perpbot_rate_budget_factor") == 0.5
    assert _value(m, "perpbot_kill_active") == 0  # the tick's kill section is the truth
    m.on_tick(snap, {"BTC/USDT:USDT": {"amount": 0.0, "mark_price": 50000.0}})
    assert _value(m, "perpbot_liquidation_distance_ratio", symbol="BTC/USDT:USDT") is None
    m.on_tick({**snap, "extras": {"kill": {"level": "halt"}}}, {})
    assert _value(m, "perpbot_kill_level", level="halt") == 1


def test_the_dashboard_uses_only_exported_names() -> None:
    m = RunMetrics(ID)
    exported = generate_latest(m.registry).decode()
    names = {line.split()[2] for line in exported.splitlines() if line.startswith("# TYPE")}
    series = names | {f"{n}_total" for n in names} | {f"{n}_bucket" for n in names}
    series |= {f"{n}_count" for n in names} | {f"{n}_sum" for n in names}
    dash = json.loads((ROOT / "docs" / "grafana-perpbot.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 10
    import re

    used = {w for e in exprs for w in re.findall(r"\bperpbot_[a-z0-9_]+", e)}
    assert used and used <= series, used - series
