"""`perpbot resume` / `perpbot kill --clear`: remove the switch (or one scope's entry).

Records who cleared it and why in the kill history, and tells the alert destinations.
"""

from __future__ import annotations

from perpbot.alerts.outbox import post as post_alert
from perpbot.errors import BadInput, RuntimeFailure
from perpbot.kill.describe import Output
from perpbot.kill.sentinel import (
    clear_sentinel,
    describe_scope,
    history_path,
    read_sentinel,
    who_am_i,
)
from perpbot.paths import state_path


def clear_switch(reason: str | None, scope: str | None, *, confirmed: bool) -> Output:
    """Remove the switch (or one scope's entry); ``confirmed`` is --yes (or a prompt)."""
    current = read_sentinel()
    if current is None:
        return {"cleared": [], "left": None}, ["the kill switch is not set"]
    if not confirmed:
        raise BadInput(
            "--clear needs --yes: clearing the kill switch lets bots trade again "
            f"(it stands: {current.describe()})"
        )
    try:
        removed = clear_sentinel(reason or f"cleared by {who_am_i()}", scope=scope)
    except OSError as exc:
        raise RuntimeFailure(
            f"the kill switch could not be cleared ({exc.filename or state_path()}: "
            f"{exc.strerror or exc}): it still stands"
        ) from None
    left = read_sentinel()
    if removed:
        lines = [f"kill switch cleared: {e.describe()}" for e in removed]
        for line in lines:
            post_alert("KILL_CLEARED", "warning", f"{line} ({reason or who_am_i()})")
        lines.append(f"recorded in {history_path()}")
    else:
        lines = [f"no kill switch for {describe_scope(scope or 'all')}"]
    if left is not None:
        lines.append(f"still set: {left.describe()}")
    doc = {"cleared": [e.to_dict() for e in removed], "left": left.to_dict() if left else None}
    return doc, lines
