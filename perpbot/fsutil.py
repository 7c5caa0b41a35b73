"""Atomic file writes: nothing a user stored is ever half-written.

Write to a temporary file in the same directory, fsync it, then ``os.replace`` it over the
target (atomic on POSIX), and fsync the directory so the rename survives a crash.

The temporary file is created with ``O_CREAT | O_EXCL``, mode 0600 and a random name (what
``tempfile.mkstemp`` does) without importing ``tempfile``, which pulls in shutil, bz2, lzma
and random: `perpbot kill` writes the KILL file through here, and its start-up before that
write is the kill's latency.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any


def atomic_write_bytes(
    path: Path, data: bytes, *, mode: int | None = None, sync: bool = True
) -> None:
    """``sync=False`` keeps the atomic replace but skips both fsyncs: readers never see a
    half-written file, but after a power cut the previous version may come back (for files
    rewritten many times a second, such as the audit log's checkpoints)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.urandom(8).hex()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # not inherited (PEP 446)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    if not sync:
        return
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def atomic_write_text(path: Path, text: str, *, mode: int | None = None, sync: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode, sync=sync)


def atomic_write_json(path: Path, obj: Any, *, mode: int | None = None, sync: bool = True) -> None:
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    atomic_write_text(path, text, mode=mode, sync=sync)


def read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)
