"""A strategy's saved state: ``on_save``'s answer, kept per strategy name in the state dir.

    <state>/strategies/<name>.json   {"strategy": name, "saved_at": epoch, "run_id": ...,
                                      "state": what on_save returned}

Written atomically (a crash leaves the previous file whole); read at the next start and
handed to ``on_load``. The engine reads and writes it: the strategy's process never needs
the state dir.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from perpbot.errors import RuntimeFailure
from perpbot.fsutil import atomic_write_json, read_json
from perpbot.paths import strategies_dir


def saved_path(strategy: str) -> Path:
    return strategies_dir() / f"{strategy}.json"


def load_saved(strategy: str) -> dict[str, Any] | None:
    """The last saved state, None when there is none; one line when it is unreadable."""
    path = saved_path(strategy)
    if not path.exists():
        return None
    try:
        doc = read_json(path)
    except (OSError, ValueError) as exc:
        raise RuntimeFailure(
            f"{path}: the saved state of strategy {strategy!r} is unreadable "
            f"({type(exc).__name__}); move it away to start without it"
        ) from None
    state = doc.get("state") if isinstance(doc, dict) else None
    return state if isinstance(state, dict) else None


def store_saved(strategy: str, run_id: str, state: Any) -> str | None:
    """Persist ``state`` (a JSON object); a sentence saying why not, or None when kept."""
    if state is None:
        return None
    if not isinstance(state, dict):
        return f"on_save returned {type(state).__name__}, expected a dict (nothing saved)"
    try:
        json.dumps(state, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"on_save's state is not JSON data ({exc}); nothing saved"
    doc = {"strategy": strategy, "run_id": run_id, "saved_at": time.time(), "state": state}
    atomic_write_json(saved_path(strategy), doc)
    return None
