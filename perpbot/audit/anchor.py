"""Anchoring the chain head outside the state dir.

A hash chain with signed checkpoints proves that nothing *inside* the log was changed. It
cannot tell, from the log alone, that the newest records were cut off, the newest run was
deleted or the whole log was rolled back to an older valid copy: for that the head of the
chain (the latest signed checkpoint) must be kept somewhere an attacker of the state dir
cannot rewrite. Three anchors exist:

- the OS keyring (when usable): the writer stores the head there at a run's open, at each
  log rotation and at its close;
- an exported head: ``perpbot log head`` prints it, ``perpbot log verify --head HASH``
  checks the log still holds it;
- head listeners: code that sends the head off the machine (an alert channel) registers
  with :func:`add_head_listener` and receives each new head (at most every ``every_s``
  seconds, and always the final head of a run).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from perpbot.errors import BadInput

# (head, final): ``head`` is a signed checkpoint (run, file, seq, hash, ts, key, sig);
# ``final`` is True for the head a run publishes when it opens, rotates or closes.
HeadListener = Callable[[dict[str, Any], bool], None]

HASH_RE = re.compile(r"^[0-9a-f]{64}$")


@dataclass(slots=True)
class _Listener:
    fn: HeadListener
    every_s: float
    last: float = float("-inf")


_listeners: list[_Listener] = []
_lock = threading.Lock()


def add_head_listener(fn: HeadListener, *, every_s: float = 0.0) -> Callable[[], None]:
    """Call ``fn(head, final)`` with each new chain head (off the request path, on the
    log's timer thread or at open/close); non-final heads at most every ``every_s``
    seconds. A listener that raises is skipped for that head: it must record its own
    failures (the log never stops for an anchor). Returns a function that removes it."""
    entry = _Listener(fn, every_s)
    with _lock:
        _listeners.append(entry)

    def remove() -> None:
        with _lock:
            if entry in _listeners:
                _listeners.remove(entry)

    return remove


def publish_head(head: dict[str, Any], *, final: bool) -> None:
    now = time.monotonic()
    with _lock:
        due = [x for x in _listeners if final or now - x.last >= x.every_s]
        for x in due:
            x.last = now
    for x in due:
        try:
            x.fn(dict(head), final)
        except Exception:  # an anchor never stops the log (see the docstring)
            continue


def head_lines(head: dict[str, Any]) -> list[str]:
    """The head as `perpbot log head` prints it: the hash first (what --head takes)."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(float(head.get("ts") or 0)))
    return [
        f"head {head.get('hash')}",
        f"run {head.get('run')} seq {head.get('seq')} file {head.get('file')} at {when}",
        f"key {head.get('key')}",
        f"sig {head.get('sig')}",
    ]


def parse_head_hash(text: str) -> str:
    value = text.strip().lower().removeprefix("head ").removeprefix("sha256:").strip()
    if not HASH_RE.match(value):
        raise BadInput(
            f"--head: got {text!r}, expected the 64-hex-digit hash `perpbot log head` prints"
        )
    return value
