"""Following the hash chain through a list of lines, fast.

Each line must start with ``{"seq":N,"prev":"<hash of the line before>",``: checking that
prefix and hashing the line is all the chain needs, so the verifier and the writer's crash
recovery walk logs at hashing speed and parse only the lines that carry a signature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from perpbot.audit.canonical import prefix
from perpbot.audit.signing import is_signed_line

# Called with (index, line, hash) for each signed line; returns False to stop the walk there.
SignedHook = Callable[[int, bytes, str], bool]


@dataclass
class ChainPosition:
    """Where a walk got to: the next expected seq and the hash it must link to."""

    seq: int
    prev: str


def follow(
    lines: Sequence[bytes],
    start: int,
    pos: ChainPosition,
    on_signed: SignedHook | None = None,
) -> int:
    """Walk ``lines[start:]`` while each line continues the chain; update ``pos``.

    Returns the index of the first line that does not continue the chain (or that the hook
    rejected), or ``len(lines)`` when every line did.
    """
    sha = hashlib.sha256
    seq, prev = pos.seq, pos.prev
    i = start
    n = len(lines)
    try:
        while i < n:
            line = lines[i]
            if not line.startswith(prefix(seq, prev)):
                return i
            h = sha(line).hexdigest()
            if on_signed is not None and is_signed_line(line) and not on_signed(i, line, h):
                return i
            seq += 1
            prev = h
            i += 1
        return i
    finally:
        pos.seq, pos.prev = seq, prev
