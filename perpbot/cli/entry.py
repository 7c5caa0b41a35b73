"""The console entry point: the plain `perpbot kill` skips the Typer app entirely.

Setting the kill switch is the one command whose start-up time is a safety property.
Typer (0.29) imports pydantic to coerce the parameters of any command, which costs more
than everything `perpbot kill` does; so ``perpbot kill [--level --reason --profile --run
--wait --json]`` is served by ``perpbot.cli.kill_fast.fast_kill`` (argparse, standard library
only), which also reports a typo in one line; any other kill option (--direct, --clear,
--show, --help) and every other command go to the Typer app as usual.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["kill"]:
        # lazy: start-up speed of every other command (kill modules load only for kill)
        from perpbot.cli.kill_fast import fast_kill

        code = fast_kill(args[1:])
        if code is not None:
            sys.exit(code)
    # lazy: start-up speed of `perpbot kill` (Typer never loads for the plain kill)
    from perpbot.cli.app import main as app_main

    app_main(args)


if __name__ == "__main__":
    main()
