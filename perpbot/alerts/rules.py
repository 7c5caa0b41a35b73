"""Which decisions become alerts, at which severity, and the operator's filters.

A decision's severity comes from this table (first match wins); decisions that match
nothing are not alerts (waits for budget, retries, risk rejections: they are in the
journal and the metrics, not on a phone at 3 a.m.).

    critical  kill switch tripped or seen, dead-man refresh/disarm failures and lapses,
              418 bans, protective-stop failures, a run that crashed or was refused,
              monitor alerts marked ``trip``, the disk about to fill, a liquidation
              (FILL_LIQUIDATION)
    warning   kill switch cleared or done, budget cuts, 429s and their waits, waits at the
              rate reserve and a reserve too small for the dead-man, stale
              streams or prices, monitor alerts, scope denials, failed alert deliveries,
              an ADL (FILL_ADL), a fill the run did not place (FILL_FOREIGN)
    info      fills, periodic summaries, test messages (sent only when asked for)
"""

from __future__ import annotations

import fnmatch
import time
from dataclasses import dataclass, field
from typing import Any

from perpbot.events import Decision

SEVERITIES = ("info", "warning", "critical")
RANK = {name: i for i, name in enumerate(SEVERITIES)}

# (layer or "*", action or "*", code pattern, severity); first match wins
TABLE: tuple[tuple[str, str, str, str | None], ...] = (
    ("alerts", "*", "ALERT_DELIVERY_FAILED", "warning"),
    ("alerts", "*", "ALERT_QUEUE_FULL", "warning"),
    ("alerts", "*", "*", None),  # ALERT_SENT and the like: records, not alerts
    ("metrics", "*", "*", None),
    ("*", "trip", "*", "critical"),
    ("kill", "*", "KILL_SEEN", "critical"),
    ("kill", "*", "KILL_DONE", "warning"),
    ("kill", "*", "KILL_CLEARED", "warning"),
    ("kill", "*", "KILL_SET", "critical"),
    ("kill", "*", "KILL_ACTIVE", "warning"),
    ("kill", "*", "KILL_DEADMAN_ARMED", None),
    ("kill", "*", "KILL_DEADMAN_*", "critical"),
    ("*", "ban", "*", "critical"),
    ("*", "*", "RATE_WAIT_BANNED", "critical"),
    ("*", "*", "RATE_WAIT_RETRY_AFTER", "warning"),
    ("*", "*", "RATE_RETRY_AFTER", "warning"),  # a 429 that cut no budget
    # ordinary requests held at the reserve's edge: the strategy spends its whole budget
    ("*", "*", "RATE_WAIT_RESERVE", "warning"),
    ("*", "*", "RATE_RESERVE_DEADMAN", "warning"),  # the dead-man would eat the reserve
    ("*", "tighten", "*", "warning"),
    ("*", "*", "*STOP*FAIL*", "critical"),
    ("*", "*", "*STOP*REJECT*", "critical"),
    # fills the run did not place (perpbot.engine.unplaced)
    ("*", "*", "FILL_LIQUIDATION", "critical"),
    ("*", "*", "FILL_ADL", "warning"),
    ("*", "*", "FILL_FOREIGN", "warning"),
    ("*", "*", "RUN_CRASHED", "critical"),
    ("*", "*", "RUN_REFUSED", "critical"),
    ("*", "*", "DISK_HALT", "critical"),
    ("*", "*", "DISK_LOW", "warning"),
    ("*", "*", "*STALE*", "warning"),
    ("*", "alert", "*", "warning"),  # monitors (critical when marked trip: see classify)
    ("*", "deny", "*", "warning"),
    ("*", "*", "RUN_FILL", "info"),
    ("*", "*", "RUN_SUMMARY", "info"),
    ("*", "*", "ALERT_TEST", "info"),
)


# the alerts' and the metrics' own records: never alerts, whatever the filters say
SILENT_LAYERS = {"alerts": ("ALERT_DELIVERY_FAILED", "ALERT_QUEUE_FULL"), "metrics": ()}


def silent(d: Decision) -> bool:
    loud = SILENT_LAYERS.get(d.layer)
    return loud is not None and d.code not in loud


def classify(d: Decision) -> str | None:
    """The severity of a decision as an alert, or None when it is not one."""
    for layer, action, pattern, severity in TABLE:
        if layer not in ("*", d.layer) or action not in ("*", d.action):
            continue
        if fnmatch.fnmatchcase(d.code, pattern):
            if severity == "warning" and d.action == "alert" and d.data.get("trip"):
                return "critical"
            return severity
    return None


def matches(code: str, patterns: list[str]) -> bool:
    """``patterns`` are codes or shell-style patterns such as ``KILL_*``."""
    return any(fnmatch.fnmatchcase(code, p) for p in patterns)


@dataclass(frozen=True, slots=True)
class Filters:
    min_severity: str = "warning"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()

    def wants(self, code: str, severity: str | None) -> bool:
        """Excluded: never; included: always (even a decision the table does not alert
        on); otherwise by severity."""
        if matches(code, list(self.exclude)):
            return False
        if matches(code, list(self.include)):
            return True
        return severity is not None and RANK[severity] >= RANK[self.min_severity]


@dataclass(slots=True)
class Alert:
    """One message to send; ``count`` grows when the same alert repeats in its window."""

    code: str
    severity: str
    sentence: str
    key: str  # what repeats are recognised by (the code and the symbol)
    bot: str = ""
    run_id: str = ""
    machine: str = ""
    ts: float = field(default_factory=time.time)
    count: int = 1
    exclude: frozenset[str] = frozenset()  # destinations not to send to
    data: dict[str, Any] = field(default_factory=dict)

    def title(self) -> str:
        who = f" {self.bot}" if self.bot else ""
        return f"perpbot [{self.severity}]{who}: {self.code}"

    def body(self) -> str:
        lines = [self.sentence]
        if self.count > 1:
            lines.append(f"(seen {self.count} times since the first at {_clock(self.ts)})")
        where = [f"code {self.code}"]
        if self.run_id:
            where.append(f"run {self.run_id}")
        if self.machine:
            where.append(f"host {self.machine}")
        where.append(_clock(self.ts))
        lines.append(" | ".join(where))
        return "\n".join(lines)


def _clock(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ts))


def alert_key(d: Decision) -> str:
    symbol = d.data.get("symbol")
    return f"{d.code}:{symbol}" if isinstance(symbol, str) else d.code
