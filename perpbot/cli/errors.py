"""Running the Typer app with perpbot's exit-code contract."""

from __future__ import annotations

import sys
import time
import traceback

import typer

try:  # typer >= 0.20 vendors click
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

from perpbot.errors import PerpbotError


def error_line(message: str) -> None:
    print(f"perpbot: error: {message}", file=sys.stderr, flush=True)


def _save_traceback() -> str | None:
    try:
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
        return 130
    except ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt:
        print("perpbot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 1
    except Exception as exc:
        where = _save_traceback()
        error_line(
            f"internal error ({type(exc).__name__}); please report it"
            + (f" with {where}" if where else "")
        )
        return 1
    return result if isinstance(result, int) else 0
