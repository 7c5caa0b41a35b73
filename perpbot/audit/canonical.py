"""Canonical serialisation of log records, and the hash that chains them.

A record line is ``{"seq":N,"prev":"<hex>",<the other keys, sorted>}`` in compact UTF-8
JSON (no spaces, no NaN, keys sorted at every depth below the top), followed by ``\\n``.
``seq`` and ``prev`` come first so that a verifier can check the chain by comparing a
prefix instead of parsing every line; signed records end with ``,"sig":"<base64>"}``.

The hash of a record is SHA-256 over the exact bytes of its line (without the newline):
any edit, even of whitespace, changes it, so nothing needs re-serialising to verify.
"""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

GENESIS = "0" * 64  # ``prev`` of the very first record under a state dir


def canonical(obj: Any) -> bytes:
    """Compact, sorted, UTF-8 JSON; raises ValueError on NaN/infinity."""
    return json.dumps(
        obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def prefix(seq: int, prev: str) -> bytes:
    """The bytes every line with this position in the chain must start with."""
    return b'{"seq":%d,"prev":"%s",' % (seq, prev.encode("ascii"))


def encode(seq: int, prev: str, body: dict[str, Any]) -> bytes:
    """The line (without newline) for ``body`` at position ``seq`` after ``prev``."""
    if not body:
        raise ValueError("a record needs at least one field besides seq and prev")
    return prefix(seq, prev) + canonical(body)[1:]


def line_hash(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def decode(line: bytes) -> dict[str, Any]:
    """Parse a line (ValueError if it is not a JSON object)."""
    obj = json.loads(line)
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    return obj


def is_canonical(line: bytes, record: dict[str, Any]) -> bool:
    """Whether ``line`` is exactly what the writer would have produced for ``record``."""
    body = {k: v for k, v in record.items() if k not in ("seq", "prev", "sig")}
    seq, prev = record.get("seq"), record.get("prev")
    if not isinstance(seq, int) or not isinstance(prev, str) or not body:
        return False
    try:
        expected = encode(seq, prev, body)
    except (ValueError, UnicodeEncodeError):
        return False
    sig = record.get("sig")
    if sig is not None:
        expected = expected[:-1] + b',"sig":' + canonical(sig) + b"}"
    return line == expected


def finite(value: Any) -> Any:
    """Floats that JSON cannot carry (NaN, infinity) as strings; everything else unchanged."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
