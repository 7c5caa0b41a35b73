"""`perpbot run`: load and check the strategy file, build the run, run it, say how it ended.

    load strategy.toml -> instantiate the strategy -> preflight (kill, keys, risk) ->
    Runner (lifecycle) -> attach the concerns (perpbot.app.plugins) -> run

Returns the exit code; raises PerpbotError for an ending that has one line to say.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from perpbot.app import plugins
from perpbot.app.lifecycle import Runner, new_run_id
from perpbot.app.signals import release_signals
from perpbot.config import load_strategy
from perpbot.engine.isolation.host import ProcessHost
from perpbot.engine.loader import instantiate
from perpbot.engine.output import RunOutput
from perpbot.errors import EXIT_FAIL, EXIT_OK, BadInput, PerpbotError
from perpbot.events import EventBus
from perpbot.harden import no_core_dumps


def run_strategy(
    strategy_file: Path,
    *,
    duration: float | None,
    json_output: bool,
    plain: bool,
    observe: Callable[[EventBus], None] | None = None,
) -> int:
    """``observe`` subscribes to the run's bus before it starts (``--verbose``)."""
    no_core_dumps()  # the API secret will be in this process's memory: no core file may hold it
    if duration is not None and not 0 < duration < float("inf"):  # (NaN compares false)
        raise BadInput(f"--duration: got {duration:g}, expected a number of seconds > 0")
    loaded = load_strategy(strategy_file)
    run_id = new_run_id(loaded.config.strategy.name)
    strategy, process = None, None
    if loaded.config.strategy.isolation == "process":
        # the strategy's code runs only in its own process (loaded there after it confined
        # itself), never in this one, which will hold the API secret
        process = ProcessHost(loaded, run_id)
        try:
            process.ready()  # a bad [strategy.params] is exit 2 here, before any request
        except BaseException:
            process.close()
            raise
    else:
        strategy = instantiate(loaded)
    try:
        plugins.preflight(loaded)
    except BaseException:
        if process is not None:
            process.close()
        raise
    mode = "json" if json_output else ("live" if sys.stdout.isatty() and not plain else "plain")
    runner = Runner(
        loaded, strategy, output=RunOutput(mode), duration=duration, run_id=run_id,
        process=process,
    )  # fmt: skip
    plugins.attach(runner)
    if observe is not None:
        observe(runner.bus)
    asyncio.run(_run_to_the_end(runner))
    if runner.fatal is not None and runner.exit_code != EXIT_OK:
        fatal = runner.fatal
        raise PerpbotError(fatal.message) if fatal.exit_code == EXIT_FAIL else fatal
    return runner.exit_code


async def _run_to_the_end(runner: Runner) -> None:
    """The run, then this process ignores SIGINT/SIGTERM while asyncio tears its loop down
    (``release_signals``): the command's exit code stands whatever a supervisor sends."""
    try:
        await runner.run()
    finally:
        release_signals(asyncio.get_running_loop())
