"""Which of the codes perpbot publishes today become alerts, and at what severity."""

from __future__ import annotations

import pytest

from perpbot.alerts.rules import Filters, classify, silent
from perpbot.events import Decision

CASES = [
    ("kill", "trip", "KILL_DRAWDOWN", {}, "critical"),
    ("kill", "act", "KILL_SEEN", {}, "critical"),
    ("kill", "info", "KILL_CLEARED", {}, "warning"),
    ("kill", "alert", "KILL_DEADMAN_UNAVAILABLE", {}, "critical"),  # also an arm failure
    ("kill", "alert", "KILL_DEADMAN_REFRESH_FAILED", {}, "critical"),
    ("kill", "info", "KILL_DEADMAN_LAPSING", {}, "critical"),  # orders left to the countdown
    ("kill", "info", "KILL_DEADMAN_ARMED", {}, None),
    ("ratelimit", "ban", "RATE_BANNED", {}, "critical"),
    ("ratelimit", "tighten", "RATE_TIGHTEN_429", {}, "warning"),
    ("ratelimit", "info", "RATE_RETRY_AFTER", {}, "warning"),
    ("ratelimit", "wait", "RATE_WAIT_BUDGET", {}, None),
    ("ratelimit", "wait", "RATE_WAIT_RESERVE", {}, "warning"),  # the strategy spends it all
    ("ratelimit", "warn", "RATE_RESERVE_DEADMAN", {}, "warning"),
    ("index", "alert", "INDEX_SOURCE_STALE", {}, "warning"),
    ("monitor", "alert", "MONITOR_CANCEL_BURST", {}, "warning"),
    ("monitor", "alert", "MONITOR_SLIPPAGE", {"trip": True}, "critical"),
    ("engine", "alert", "RUN_CRASHED", {}, "critical"),
    ("engine", "act", "PROTECTIVE_STOP_FAILED", {}, "critical"),
    ("disk", "alert", "DISK_HALT", {}, "critical"),
    ("disk", "alert", "DISK_LOW", {}, "warning"),
    ("risk", "reject", "RISK_MAX_ORDER_NOTIONAL", {}, None),
    ("retry", "retry", "RETRY_TRANSIENT", {}, None),
    ("alerts", "alert", "ALERT_DELIVERY_FAILED", {}, "warning"),
]


@pytest.mark.parametrize(("layer", "action", "code", "data", "want"), CASES)
def test_severity(layer: str, action: str, code: str, data: dict, want: str | None) -> None:
    assert classify(Decision(layer, action, code, "s", data)) == want  # type: ignore[arg-type]


def test_own_records_are_never_alerts_whatever_the_filters() -> None:
    assert silent(Decision("alerts", "info", "ALERT_SENT", "s"))
    assert silent(Decision("metrics", "info", "METRICS_SERVING", "s"))
    assert not silent(Decision("alerts", "alert", "ALERT_DELIVERY_FAILED", "s"))


def test_filters() -> None:
    f = Filters(min_severity="critical", include=("RATE_WAIT_*",), exclude=("KILL_BAN",))
    assert f.wants("RATE_WAIT_BUDGET", None)  # included although the table says no
    assert not f.wants("KILL_BAN", "critical")  # excluded beats everything
    assert not f.wants("DISK_LOW", "warning") and f.wants("DISK_HALT", "critical")
