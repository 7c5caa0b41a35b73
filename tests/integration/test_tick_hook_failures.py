"""A tick hook that fails every tick (a full disk fails the status file's write each time) is
said once per distinct error, not once per tick: the run's stderr stays readable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.integration.risk_support.bot import Bot, write_toml


async def test_a_tick_hook_failing_every_tick_is_said_once_per_error(
    account: tuple[Any, str], tmp_path: Path
) -> None:
    sim, _key = account
    toml = write_toml(
        tmp_path, sim.base_url, kill={"deadman": False}, risk={"accept_no_limits": True}
    )
    calls: list[int] = []

    def failing(_run: Any, _snap: dict[str, Any]) -> None:
        calls.append(1)
        if len(calls) <= 6:
            raise OSError(28, "No space left on device")
        raise ValueError("another fault")

    async with Bot(toml) as bot:
        bot.runner.after_tick.append(failing)
        await bot.until(lambda: len(calls) >= 10)  # ticks run every 0.1 s
        err = bot.runner.output.err.getvalue()
    said = [ln for ln in err.splitlines() if "tick hook failed" in ln]
    assert said == [
        "perpbot: warning: tick hook failed: OSError: [Errno 28] No space left on device "
        "(said once; tried again every tick)",
        "perpbot: warning: tick hook failed: ValueError: another fault "
        "(said once; tried again every tick)",
    ], err
