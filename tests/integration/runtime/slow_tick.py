"""A strategy whose every tick takes 0.4 s: a stop meets it in the middle of one."""

from __future__ import annotations

import time
from typing import Any

from perpbot.engine import Context, Strategy

TICK_S = 0.4


class SlowTick(Strategy):
    ticks = 0

    def on_tick(self, ctx: Context) -> None:
        self.ticks += 1
        ctx.log(f"tick {self.ticks} begins")
        time.sleep(TICK_S)

    def on_stop(self, ctx: Context) -> None:
        ctx.log("on_stop ran")

    def on_save(self, ctx: Context) -> dict[str, Any]:
        return {"ticks": self.ticks}
