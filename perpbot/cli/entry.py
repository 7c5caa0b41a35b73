"""The console entry point: the plain `perpbot kill` skips the Typer app entirely.

Setting the kill switch is the one command whose start-up time is a safety property.
Typer (0.29) imports pydantic to coerce the parameters of any command, which costs more
than everything `perpbot kill` does; so ``perpbot kill [--level --reason --profile --run
--wait --json]`` is served by ``perpbot.cli.kill_fast.fast_kill`` (argparse, standard library
only), which also reports a typo in one line; any other kill option (--direct, --clear,
--show, --help) and every other command go to the Typer app as usual.
"""

from __future__ import annotations

import signal
import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["kill"]:
        # lazy: start-up speed of every other command (kill modules load only for kill)
        from perpbot.cli.kill_fast import fast_kill

        code = fast_kill(args[1:])
        if code is not None:
            finish(code)
    # lazy: start-up speed of `perpbot kill` (Typer never loads for the plain kill)
    from perpbot.cli.app import app
    from perpbot.cli.errors import run_app

    finish(run_app(app, args))


def finish(code: int) -> None:
    """Exit with the command's code, whatever signal arrives from here on.

    The command's work is done (a run has stopped, cancelled and written its summary), but
    the interpreter's own teardown still takes ~0.5 s (freeing ccxt's modules). asyncio put
    SIGTERM back to its default when the run's loop closed, so a SIGTERM from a supervisor
    in that moment would end the process "killed by signal 15" instead of with its exit
    code (4 for a kill switch, say), and a Ctrl-C would print a KeyboardInterrupt traceback.
    """
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.exit(code)


if __name__ == "__main__":
    main()
