"""The disk-space trip: warn, then halt new orders before the disk is full.

A full disk is a safety event: the signed log cannot record a request, the kill sentinel
cannot be written, a run's journal tears. ``DiskMonitor`` polls the free space of the state
dir's filesystem (``poll_s``) and publishes:

    DISK_LOW   free space below warn_free_pct                 (alert, once per episode)
    DISK_HALT  free space below halt_free_pct or halt_free_mb  (alert), then ``on_halt``
    DISK_OK    free space back above the warning level         (info)

``on_halt(code, sentence)`` is the narrow hook to the kill switch's automatic trip (the
kill engineer owns the gates); it is called once. Trading resumes only when a human clears
the switch, after freeing space.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from perpbot.config import DiskSection
from perpbot.events import Decision, EventBus
from perpbot.identity import RunIdentity

MB = 1024 * 1024
LAYER = "disk"


def _mb(n: float) -> str:
    return f"{n / MB:,.0f} MB"


class DiskMonitor:
    def __init__(
        self,
        bus: EventBus,
        section: DiskSection,
        identity: RunIdentity,
        *,
        path: Path,
        on_halt: Callable[[str, str], Any] | None = None,
        usage: Callable[[Path], Any] = shutil.disk_usage,
    ) -> None:
        self.bus = bus
        self.section = section
        self.identity = identity
        self.path = path
        self.on_halt = on_halt
        self.usage = usage
        self.state = "ok"
        self.halted = False

    @staticmethod
    def level_of(s: DiskSection, free: int, total: int) -> str:
        pct = 100.0 * free / total if total else 100.0
        if pct < s.halt_free_pct or free < s.halt_free_mb * MB:
            return "halt"
        if pct < s.warn_free_pct:
            return "warn"
        return "ok"

    def check(self) -> str:
        """One look at the disk; publishes on a change of level."""
        u = self.usage(self.path)
        level = self.level_of(self.section, u.free, u.total)
        pct = 100.0 * u.free / u.total if u.total else 100.0
        data = {"free_bytes": u.free, "total_bytes": u.total, "free_pct": round(pct, 2)}
        s = self.section
        where = f"{self.path} has {_mb(u.free)} free ({pct:.1f}% of {_mb(u.total)})"
        if level == "halt" and not self.halted:
            self.halted = True
            sentence = (
                f"{where}, below [disk] halt_free_pct = {s.halt_free_pct:g}% or halt_free_mb = "
                f"{s.halt_free_mb:g}: new orders are halted before the disk fills (free space, "
                "then clear the kill switch)"
            )
            self.bus.publish(Decision(LAYER, "alert", "DISK_HALT", sentence, data))
            if self.on_halt is not None:
                self.on_halt("DISK_HALT", sentence)
        elif level == "warn" and self.state == "ok":
            sentence = (
                f"{where}, below [disk] warn_free_pct = {s.warn_free_pct:g}%; new orders halt "
                f"below {s.halt_free_pct:g}% (prune: perpbot runs prune --keep 30d)"
            )
            self.bus.publish(Decision(LAYER, "alert", "DISK_LOW", sentence, data))
        elif level == "ok" and self.state != "ok":
            self.bus.publish(Decision(LAYER, "info", "DISK_OK", f"{where} again", data))
        self.state = level
        return level

    async def watch(self) -> None:
        while True:
            try:
                self.check()
            except OSError as exc:  # the filesystem went away: say so once per poll
                self.bus.publish(
                    Decision(
                        LAYER,
                        "alert",
                        "DISK_UNREADABLE",
                        f"cannot read the free space of {self.path} ({exc.strerror})",
                    )
                )
            await asyncio.sleep(self.section.poll_s)


def attach(
    bus: EventBus,
    section: DiskSection,
    identity: RunIdentity,
    *,
    path: Path,
    on_halt: Callable[[str, str], Any] | None = None,
) -> DiskMonitor:
    return DiskMonitor(bus, section, identity, path=path, on_halt=on_halt)
