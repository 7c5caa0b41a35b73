"""The errors a command can end with, each tied to the exit code the README documents.

Commands raise these; the CLI wrapper prints the message as one line on stderr and exits
with ``exit_code``. Anything else escaping is a bug, reported without leaking secrets.
"""

from __future__ import annotations

import re

# The exit codes (README: exit codes), defined here and nowhere else.
EXIT_OK = 0
EXIT_FAIL = 1  # runtime failure
EXIT_BAD_INPUT = 2
EXIT_SCOPE = 3  # scope denied
EXIT_KILL = 4  # kill switch
EXIT_INTERRUPTED = 130
# bad input, scope denied, kill switch: a guard ended the run (it stops; alerts say so)
GUARD_EXIT_CODES = (EXIT_BAD_INPUT, EXIT_SCOPE, EXIT_KILL)


_QUERY = re.compile(r"(https?://[^\s?]+)\?\S*")
_TAG = re.compile(r"<[^>]*>")


def describe_error(exc: BaseException) -> str:
    """``Class: first line`` of an error, with URL query strings (signatures) cut off and
    HTML tags dropped (a ccxt error's text is the request's URL, then the exchange's answer,
    which may be an HTML error page)."""
    text = _TAG.sub(" ", _QUERY.sub(r"\1?...", str(exc).split("\n")[0]))
    text = " ".join(text.split())[:200]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class PerpbotError(Exception):
    """A failure with a message a trader can act on.

    Guards that refuse a request give a reason ``code`` (e.g. ``SCOPE_MISSING``,
    ``RISK_MAX_NOTIONAL``) besides the sentence, so logs and status can group them.
    """

    exit_code = EXIT_FAIL

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class RuntimeFailure(PerpbotError):
    """The run failed (exchange down, verification failed...): exit 1."""

    exit_code = EXIT_FAIL


class BadInput(PerpbotError):
    """Bad input or usage (malformed file, unknown symbol, negative size): exit 2."""

    exit_code = EXIT_BAD_INPUT


class PermissionDenied(PerpbotError):
    """A key profile's scope does not cover what was asked: exit 3."""

    exit_code = EXIT_SCOPE


class KillSwitchActive(PerpbotError):
    """Stopped, or refused to start, because of the kill switch: exit 4."""

    exit_code = EXIT_KILL


class RiskRejected(PerpbotError):
    """A pre-trade risk check refused an order. A strategy may catch it and carry on."""

    exit_code = EXIT_FAIL


class Interrupted(PerpbotError):
    """Ctrl-C: exit 130."""

    exit_code = EXIT_INTERRUPTED


def error_for_exit_code(message: str, exit_code: int, code: str | None = None) -> PerpbotError:
    """A PerpbotError rebuilt from plain data (what crossed the strategy boundary)."""
    kinds: dict[int, type[PerpbotError]] = {
        EXIT_BAD_INPUT: BadInput,
        EXIT_SCOPE: PermissionDenied,
        EXIT_KILL: KillSwitchActive,
    }
    return kinds.get(exit_code, PerpbotError)(message, code=code)
