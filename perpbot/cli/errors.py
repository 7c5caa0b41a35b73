"""Running the Typer app with perpbot's exit-code contract."""

from __future__ import annotations

import errno
import re
import sys
import time
import traceback

import typer

try:  # typer >= 0.20 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

from perpbot.errors import EXIT_FAIL, EXIT_INTERRUPTED, EXIT_OK, PerpbotError


def error_line(message: str) -> None:
    print(f"perpbot: error: {message}", file=sys.stderr, flush=True)


def _exchange_host(message: str) -> str | None:
    found = re.search(r"https?://([^/\s:]+)", message)
    return found.group(1) if found else None


def environment_error(exc: BaseException) -> str | None:
    """One line for a broken environment (exit 1), or None for a bug.

    - ccxt's network errors (no route, DNS, refused, timeout, exchange down): the host it
      could not reach, never "internal error";
    - a file or folder perpbot could not use (a state folder replaced by a file, a full
      disk, no permission): the path and the reason.
    """
    kinds = {k.__name__ for k in type(exc).__mro__}
    if type(exc).__module__.startswith("ccxt") and "NetworkError" in kinds:
        host = _exchange_host(str(exc)) or "the exchange"
        return (
            f"cannot reach {host} ({type(exc).__name__}): check the network connection, "
            "[exchange] id/sandbox/url, and the exchange's status page"
        )
    if isinstance(exc, OSError) and exc.filename is not None:
        reason = "the disk is full" if exc.errno == errno.ENOSPC else (exc.strerror or "failed")
        name = exc.filename if isinstance(exc.filename, str) else repr(exc.filename)
        hint = ""
        if exc.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            hint = " (perpbot expected a folder or file of its own there: move it away)"
        return f"cannot use {name}: {reason}{hint}"
    return None


def _save_traceback() -> str | None:
    try:
        # lazy: start-up speed of `perpbot --help` (loaded only when this command runs)
        from perpbot.paths import state_dir

        path = state_dir() / f"crash-{time.strftime('%Y%m%d-%H%M%S')}.txt"
        path.write_text(traceback.format_exc(), encoding="utf-8")
        return str(path)
    except Exception:
        return None


def run_app(app: typer.Typer, argv: list[str] | None = None) -> int:
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    try:
        result = command.main(args=args, prog_name="perpbot", standalone_mode=False)
    except PerpbotError as exc:
        error_line(exc.message)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        print("perpbot: aborted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        print("perpbot: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return EXIT_FAIL
    except Exception as exc:
        sentence = environment_error(exc)
        if sentence is not None:
            error_line(sentence)
            return EXIT_FAIL
        where = _save_traceback()
        error_line(
            f"internal error ({type(exc).__name__}); please report it"
            + (f" with {where}" if where else "")
        )
        return EXIT_FAIL
    return result if isinstance(result, int) else EXIT_OK
